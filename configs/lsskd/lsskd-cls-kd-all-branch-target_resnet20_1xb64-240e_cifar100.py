# LSSKD with both branch-to-classifier options together (not in the paper's
# losses): the deepest branch distilled into the final classifier on all
# four views, and its class distribution of the unrotated view mixed into
# the classifier's progressive soft target (beta = 0.5).
_base_ = ['./lsskd-cls-kd-all_resnet20_1xb64-240e_cifar100.py']

model = dict(branch_target_weight=0.5)
