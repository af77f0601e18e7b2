# Ablation of LSSKD: every branch trained on hard joint labels (no hierarchical
# label softening).
_base_ = ['./lsskd_resnet20_1xb64-240e_cifar100.py']

model = dict(aux_head=dict(hierarchical_softening=False))
