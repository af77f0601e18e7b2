# Baseline: MobileNetV2 with the CIFAR stem on CIFAR-100 with cross-entropy,
# the paper's schedule (240 epochs, batch 64).
_base_ = [
    '../_base_/models/cifar100/mobilenet-v2.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/cifar100_bs64_240e.py',
    '../_base_/default_runtime.py',
]

# MobileNetV2 train with lr 0.01 (HSSAKD, LSSKD).
optim_wrapper = dict(optimizer=dict(lr=0.01))
