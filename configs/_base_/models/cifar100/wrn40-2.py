# WRN-40-2 (2.26 M), 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='WideResNet_CIFAR', depth=40, widen_factor=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
