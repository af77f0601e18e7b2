# ResNet-18 with mmpretrain's CIFAR stem (stride-1 3x3, no max pooling),
# so a 64x64 image ends at 8x8; 200-way linear classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=200,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
