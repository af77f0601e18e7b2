# ResNeXt-50 32x4d with the CIFAR stem, 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNeXt_CIFAR', depth=50, groups=32, width_per_group=4),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
