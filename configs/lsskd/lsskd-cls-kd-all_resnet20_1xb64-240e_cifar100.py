# LSSKD with the deepest branch distilled into the final classifier on all
# four views, as HSSAKD distils its final classifier (an option): the
# classifier also classifies the rotated views, each against the branch's
# class distribution of that view.
_base_ = ['./lsskd-cls-kd_resnet20_1xb64-240e_cifar100.py']

model = dict(cls_distill_views='all')
