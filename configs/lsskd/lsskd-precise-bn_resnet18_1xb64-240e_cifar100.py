# LSSKD with BatchNorm recalibration: after every epoch, before validation
# and before the checkpoint is written, mmpretrain's PreciseBNHook recomputes
# the classifier's BN statistics on unrotated training images (LSSKD's
# tensor mode runs the plain classifier); during training they are
# estimated over all four rotations, while inference sees unrotated images.
_base_ = ['./lsskd_resnet18_1xb64-240e_cifar100.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='PreciseBNHook', num_samples=8192, priority='ABOVE_NORMAL')
]
