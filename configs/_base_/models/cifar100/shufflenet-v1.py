# ShuffleNetV1 (g=3) with the CIFAR stem, 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ShuffleNetV1_CIFAR', groups=3),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=960,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
