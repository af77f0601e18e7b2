# LSSKD with every option of the branch-to-classifier study at once (none is
# in the paper's losses): the deepest branch distilled into the final
# classifier on all four views, its class distribution mixed into the
# classifier's progressive target, and BN recalibration on unrotated
# training images after every epoch.
_base_ = ['./lsskd-cls-kd-all-branch-target_resnet20_1xb64-240e_cifar100.py']

custom_hooks = _base_.custom_hooks + [
    dict(type='PreciseBNHook', num_samples=8192, priority='ABOVE_NORMAL')
]
