# ResNet-101 with mmpretrain's CIFAR stem (42.7 M), 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=101),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
