"""mmpretrain's ImageNet backbones with the stems the CIFAR literature uses.

On 32x32 images an ImageNet stem (stride-2 convolution plus max pooling)
leaves too little resolution for the later stages, so the KD literature
(CRD, PS-KD, HSSAKD; after kuangliu/pytorch-cifar) runs these networks with
a stride-1 stem and no stem pooling. Each class below is the mmpretrain
backbone with exactly that change, so its arguments, ``out_indices`` and
pretrained-weight layout are mmpretrain's.
"""
from mmpretrain.models.backbones import (MobileNetV2, ResNet_CIFAR, ResNeXt,
                                         ShuffleNetV1, ShuffleNetV2)
from mmpretrain.registry import MODELS
from torch import nn


def _use_stride_one_stem(backbone: nn.Module) -> None:
    # The stem is a ConvModule; its convolution reads ``stride`` at forward
    # time, so changing it keeps the parameter names of the original.
    backbone.conv1.conv.stride = (1, 1)
    if hasattr(backbone, 'maxpool'):
        backbone.maxpool = nn.Identity()


@MODELS.register_module()
class ResNeXt_CIFAR(ResNeXt, ResNet_CIFAR):
    """ResNeXt with the 3x3 stride-1 stem and no max pooling of
    ``ResNet_CIFAR``.

    Args are those of mmpretrain's ``ResNeXt``.
    """


@MODELS.register_module()
class MobileNetV2_CIFAR(MobileNetV2):
    """MobileNetV2 for 32x32 inputs: stride-1 stem and stride 1 in the
    second stage (as pytorch-cifar), so the last stage is 4x4.

    Args are those of mmpretrain's ``MobileNetV2``.
    """

    # expand ratio, channels, blocks, stride; mmpretrain's table with the
    # second stage's stride 2 -> 1.
    arch_settings = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2],
                     [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                     [6, 320, 1, 1]]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        _use_stride_one_stem(self)


@MODELS.register_module()
class ShuffleNetV1_CIFAR(ShuffleNetV1):
    """ShuffleNetV1 with a stride-1 stem and no max pooling, so its three
    stages run at 16x16, 8x8 and 4x4 on CIFAR.

    Args are those of mmpretrain's ``ShuffleNetV1``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        _use_stride_one_stem(self)


@MODELS.register_module()
class ShuffleNetV2_CIFAR(ShuffleNetV2):
    """ShuffleNetV2 with a stride-1 stem and no max pooling, so its three
    stages run at 16x16, 8x8 and 4x4 on CIFAR.

    Args are those of mmpretrain's ``ShuffleNetV2``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        _use_stride_one_stem(self)
