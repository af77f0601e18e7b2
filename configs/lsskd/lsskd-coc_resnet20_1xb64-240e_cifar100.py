# LSSKD with Cutout and CutMix ("COC", the paper's Table III rows): the
# COC baseline's classifier and data, wrapped. Every target of a mixed
# image (the classifier's, each view's joint targets) mixes its sources'
# with the shares of the mix (docs/mixing.md, "Batch mixing").
_base_ = [
    '../baselines/resnet20_1xb64-240e-coc_cifar100.py',
    '../_base_/methods/lsskd.py',
]

model = dict(
    _base_.lsskd,
    _delete_=True,
    architecture=_base_.model,
    out_indices=(0, 1, 2))
