# Ablation of LSSKD: no feature-consistency loss.
_base_ = ['./lsskd_resnet18_1xb64-240e_cifar100.py']

model = dict(loss_feat=None)
