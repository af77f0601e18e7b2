from .cifar_resnet import CIFARResNet
from .cifar_variants import (MobileNetV2_CIFAR, ResNeXt_CIFAR,
                             ShuffleNetV1_CIFAR, ShuffleNetV2_CIFAR)
from .wide_resnet import WideResNet_CIFAR

__all__ = [
    'CIFARResNet', 'MobileNetV2_CIFAR', 'ResNeXt_CIFAR', 'ShuffleNetV1_CIFAR',
    'ShuffleNetV2_CIFAR', 'WideResNet_CIFAR'
]
