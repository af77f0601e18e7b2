# LSSKD with ResNet-18 (CIFAR stem) on Tiny-ImageNet, 64x64 inputs.
_base_ = [
    '../baselines/resnet18_1xb64-240e_tiny-imagenet.py',
    '../_base_/methods/lsskd.py',
]

model = dict(
    _base_.lsskd,
    _delete_=True,
    architecture=_base_.model,
    out_indices=(0, 1, 2, 3),
    aux_neck=dict(type='AuxiliaryBranchNeck', input_size=64))
