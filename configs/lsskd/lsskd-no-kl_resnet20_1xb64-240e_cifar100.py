# Ablation of LSSKD: no deep-to-shallow KL distillation between the branches.
_base_ = ['./lsskd_resnet20_1xb64-240e_cifar100.py']

model = dict(aux_head=dict(loss_kl=None))
