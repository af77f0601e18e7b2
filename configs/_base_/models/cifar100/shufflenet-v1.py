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
        topk=(1, 5),
        # PyTorch's default Linear init, as the reference codes (HSSAKD,
        # PS-KD); mmpretrain's default is Normal(std=0.01).
        init_cfg=None))
