# LSSKD, one auxiliary branch after each of the 3 returned stages.
_base_ = [
    '../baselines/resnet32x4_1xb64-240e_cifar100.py',
    '../_base_/methods/lsskd.py',
]

model = dict(
    _base_.lsskd,
    _delete_=True,
    architecture=_base_.model,
    out_indices=(0, 1, 2))
