# LSSKD with the deepest branch distilled into the final classifier on the
# unrotated view (an option, not in the paper's losses): KL at T=3 from the
# branch's class distribution of the view (its joint logits of the view's
# own rotation, detached) to the classifier's logits.
_base_ = ['./lsskd_resnet20_1xb64-240e_cifar100.py']

model = dict(
    loss_cls_distill=dict(
        type='mmrazor.KLDivergence', tau=3.0, loss_weight=1.0))
