# ResNet-34 with mmpretrain's CIFAR stem (21.3 M), 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    # Residual BN weights start at 1, as in the reference codes.
    backbone=dict(
        type='ResNet_CIFAR', depth=34, zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
        # PyTorch's default Linear init, as the reference codes (HSSAKD,
        # PS-KD); mmpretrain's default is Normal(std=0.01).
        init_cfg=None))
