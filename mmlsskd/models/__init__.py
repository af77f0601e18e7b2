from .algorithms import LSSKD, PSKD
from .backbones import (CIFARResNet, MobileNetV2_CIFAR, ResNeXt_CIFAR,
                        ShuffleNetV1_CIFAR, ShuffleNetV2_CIFAR,
                        WideResNet_CIFAR)
from .data_preprocessors import BatchedClsDataPreprocessor
from .heads import RotationJointHead
from .necks import AuxiliaryBranchNeck
from .utils import RotationViews, progressive_targets

__all__ = [
    'AuxiliaryBranchNeck', 'BatchedClsDataPreprocessor', 'CIFARResNet',
    'LSSKD', 'MobileNetV2_CIFAR', 'PSKD', 'ResNeXt_CIFAR',
    'RotationJointHead', 'RotationViews', 'ShuffleNetV1_CIFAR',
    'ShuffleNetV2_CIFAR', 'WideResNet_CIFAR', 'progressive_targets'
]
