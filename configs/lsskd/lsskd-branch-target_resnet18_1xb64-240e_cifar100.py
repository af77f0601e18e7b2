# LSSKD with the deepest branch's class distribution of the unrotated view
# (detached) mixed into the classifier's progressive soft target (an
# option): target = 0.5 * progressive target + 0.5 * branch distribution.
_base_ = ['./lsskd_resnet18_1xb64-240e_cifar100.py']

model = dict(branch_target_weight=0.5)
