# PS-KD with Cutout and CutMix: the COC baseline's classifier and data,
# wrapped. A mixed image's target mixes its sources' progressive targets
# (docs/mixing.md, "Batch mixing").
_base_ = [
    '../baselines/resnet18_1xb64-240e-coc_cifar100.py',
    '../_base_/methods/pskd.py',
]

model = dict(_base_.pskd, _delete_=True, architecture=_base_.model)
