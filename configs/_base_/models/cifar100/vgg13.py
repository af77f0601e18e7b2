# VGG-13 with BN (5 pooled stages, 1x1 at the end on 32x32), 100-way linear
# classifier.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='VGG', depth=13, norm_cfg=dict(type='BN')),
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
