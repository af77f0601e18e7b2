# Baseline: ResNeXt-50 32x4d with the CIFAR stem on CIFAR-100 with
# cross-entropy, the paper's schedule (240 epochs, batch 64).
_base_ = [
    '../_base_/models/cifar100/resnext50-32x4d.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/cifar100_bs64_240e.py',
    '../_base_/default_runtime.py',
]
