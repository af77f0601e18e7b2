# Few-shot: Cross-entropy baseline with ResNet-18 trained on 75 % of every
# CIFAR-100 class (a fixed stratified draw, seed 0); the full test set.
_base_ = ['../baselines/resnet18_1xb64-240e_cifar100.py']

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassStratifiedSubset',
        fraction=0.75,
        seed=0,
        dataset=_base_.train_dataloader.dataset))
