# ResNet-32x4 of CRD (7.4 M), 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='CIFARResNet', depth=32, stem_channels=32, base_channels=64),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
