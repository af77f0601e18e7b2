# PS-KD baseline under the same schedule.
_base_ = [
    '../baselines/wrn40-2_1xb64-240e_cifar100.py',
    '../_base_/methods/pskd.py',
]

model = dict(_base_.pskd, _delete_=True, architecture=_base_.model)
