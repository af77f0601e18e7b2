# WRN-40-1 (0.57 M), 100-way linear classifier.
model = dict(
    type='ImageClassifier',
    # The final BN-ReLU sits in the neck, so that LSSKD's last branch reads
    # the raw last-block output as in the official HSSAKD code.
    backbone=dict(
        type='WideResNet_CIFAR', depth=40, widen_factor=1, final_norm=False),
    neck=dict(type='FinalNormPooling', in_channels=64),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
        # PyTorch's default Linear init, as the reference codes (HSSAKD,
        # PS-KD); mmpretrain's default is Normal(std=0.01).
        init_cfg=None))
