# Baseline: ResNet-18 (CIFAR stem) on Tiny-ImageNet with cross-entropy,
# the CIFAR schedule of the paper (240 epochs, lr 0.05, batch 64).
_base_ = [
    '../_base_/models/tiny-imagenet/resnet18.py',
    '../_base_/datasets/tiny-imagenet_bs64.py',
    '../_base_/schedules/cifar100_bs64_240e.py',
    '../_base_/default_runtime.py',
]
