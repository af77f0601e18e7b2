# Ablation of LSSKD, HSSAKD-style: the self-supervised branches (joint
# labels, deep-to-shallow KL, feature consistency) trained on hard labels
# everywhere, with no past predictions (alpha_T = 0).
_base_ = ['./lsskd_resnet18_1xb64-240e_cifar100.py']

custom_hooks = [
    dict(type='PastPredictionHook', alpha_T=0.0),
    dict(type='EpochSeedHook')
]
