# LSSKD with ResNet-18 (mmpretrain's CIFAR stem) on CIFAR-100, the paper's
# setting: 240 epochs, SGD lr 0.05, momentum 0.9, weight decay 5e-4,
# batch 64, lr x0.1 at epochs 150/180/210, RandomCrop(32, pad 4) + flip.
# The short name of lsskd_resnet18_1xb64-240e_cifar100.py; the method's
# settings are spelled out in ../_base_/methods/lsskd.py.
_base_ = ['./lsskd_resnet18_1xb64-240e_cifar100.py']
