from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS


@MODELS.register_module()
class CIFARResNet(ResNet_CIFAR):
    """The 6n+2 ResNets for CIFAR of the knowledge-distillation literature.

    The three-stage networks of `Deep Residual Learning for Image
    Recognition <https://arxiv.org/abs/1512.03385>`_ (Sec. 4.2): a 3x3 stem,
    then stages of ``n`` BasicBlocks with 16, 32 and 64 channels at strides
    1, 2, 2, so ``depth = 6n + 2``. The wide ``x4`` variants of CRD
    (ResNet-8x4, ResNet-32x4) are the same depths with a 32-channel stem and
    64, 128, 256 channels::

        dict(type='CIFARResNet', depth=32, stem_channels=32, base_channels=64)

    It is mmpretrain's ``ResNet_CIFAR`` with these depths added, so every
    ``ResNet`` option (``out_indices``, ``frozen_stages``, ``norm_cfg``, ...)
    and LSSKD's ResNet auxiliary branches apply unchanged.

    Args:
        depth (int): Network depth, from {8, 14, 20, 32, 44, 56, 110}.
        stem_channels (int): Output channels of the 3x3 stem. Defaults to 16.
        base_channels (int): Channels of the first stage; each later stage
            doubles them. Defaults to 16.
        num_stages (int): Number of stages. Defaults to 3.
        strides (Sequence[int]): Stride of each stage's first block.
            Defaults to (1, 2, 2).
        dilations (Sequence[int]): Dilation of each stage.
            Defaults to (1, 1, 1).
        out_indices (Sequence[int]): Stages to return. Defaults to (2, ).
        **kwargs: Other arguments of mmpretrain's ``ResNet``.
    """

    arch_settings = {
        depth: (BasicBlock, ((depth - 2) // 6, ) * 3)
        for depth in (8, 14, 20, 32, 44, 56, 110)
    }

    def __init__(self,
                 depth: int,
                 stem_channels: int = 16,
                 base_channels: int = 16,
                 num_stages: int = 3,
                 strides=(1, 2, 2),
                 dilations=(1, 1, 1),
                 out_indices=(2, ),
                 **kwargs) -> None:
        if depth not in self.arch_settings:
            raise KeyError(
                f'CIFARResNet has depths {sorted(self.arch_settings)} '
                f'(6n + 2), got {depth}. For ResNet-18/34/50 on CIFAR use '
                f"mmpretrain's ResNet_CIFAR.")
        super().__init__(
            depth,
            stem_channels=stem_channels,
            base_channels=base_channels,
            num_stages=num_stages,
            strides=strides,
            dilations=dilations,
            out_indices=out_indices,
            **kwargs)
