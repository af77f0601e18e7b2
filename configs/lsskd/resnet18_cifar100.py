# LSSKD with ResNet-18 (CIFAR stem) on CIFAR-100, the paper's schedule:
# 240 epochs, SGD lr 0.05, momentum 0.9, weight decay 5e-4, batch 64,
# lr x0.1 at epochs 150/180/210, RandomCrop(32, pad 4) + horizontal flip.
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/datasets/cifar100_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmlsskd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='LSSKD',
    # The classifier that is trained and deployed: mmpretrain's ResNet-18
    # for CIFAR with a 100-way head. Every stage is returned so that each
    # gets an auxiliary branch.
    architecture=dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR',
            depth=18,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            style='pytorch'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=100, in_channels=512)),
    view_transform=dict(type='RotationViews', angles=(0, 90, 180, 270)),
    aux_neck=dict(type='AuxiliaryBranchNeck', input_size=32),
    aux_head=dict(
        type='RotationJointHead',
        loss_hier=dict(type='CrossEntropyLoss', use_soft=True,
                       loss_weight=1.0),
        loss_kl=dict(type='mmrazor.KLDivergence', tau=3.0, loss_weight=1.0)),
    loss_cls=dict(type='CrossEntropyLoss', use_soft=True, loss_weight=1.0),
    loss_feat=dict(
        type='mmrazor.L2Loss', normalize=False, loss_weight=0.01))

custom_hooks = [dict(type='PastPredictionHook', alpha_T=0.8)]

# Data: the official CIFAR-100 archive, downloaded into data/cifar100 on
# first use. For a local copy of `cifar-100-python`, see README.md.
train_dataloader = dict(batch_size=64, num_workers=2)
val_dataloader = dict(batch_size=64, num_workers=2)
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)

# Batch 64 on one GPU; --auto-scale-lr scales lr for other batch sizes.
auto_scale_lr = dict(base_batch_size=64)
