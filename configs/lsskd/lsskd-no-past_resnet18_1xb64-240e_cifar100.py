# Ablation of LSSKD: HSSAKD-style: the self-supervised branches (joint labels, KL,
# features) with hard labels everywhere and no past predictions (alpha_T = 0).
_base_ = ['./lsskd_resnet18_1xb64-240e_cifar100.py']

custom_hooks = [dict(type='PastPredictionHook', alpha_T=0.0)]
