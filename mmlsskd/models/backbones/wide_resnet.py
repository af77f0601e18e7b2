from typing import Sequence, Tuple

import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch import nn


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity or 1x1 shortcut.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first convolution and the shortcut.
        drop_rate (float): Dropout between the two convolutions.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 drop_rate: float, conv_cfg, norm_cfg: dict) -> None:
        super().__init__()
        self.norm1 = build_norm_layer(norm_cfg, in_channels)[1]
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, out_channels, out_channels, 3, 1, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = build_conv_layer(
                conv_cfg, in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.norm1(x))
        # A projection shortcut takes the pre-activated input (Zagoruyko &
        # Komodakis); an identity shortcut the raw one.
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.relu(self.norm2(self.conv1(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv2(out) + identity


@MODELS.register_module()
class WideResNet_CIFAR(BaseBackbone):
    """Wide residual network for CIFAR (WRN-d-k).

    `Wide Residual Networks <https://arxiv.org/abs/1605.07146>`_: a 3x3 stem
    with 16 channels, then three stages of ``(depth - 4) / 6`` pre-activation
    blocks with ``16k``, ``32k`` and ``64k`` channels at strides 1, 2, 2.
    A pre-activation network ends with a BN-ReLU before pooling. With
    ``final_norm=True`` the last stage ends with it, so a plain pooling neck
    follows; with ``final_norm=False`` the last stage returns the raw output
    of its last block and :class:`FinalNormPooling` applies the BN-ReLU as
    the classifier's neck. The second is how the official HSSAKD code feeds
    its auxiliary branches: the branch after the last stage reads the raw
    block output, not the normalised one. WRN-16-2, WRN-40-1 and WRN-40-2
    are the students and teachers of the CIFAR distillation literature.

    Besides returning any stages, it can build fresh copies of its stages
    (:meth:`make_stage`), which LSSKD's auxiliary branches use.

    Args:
        depth (int): Network depth, ``6n + 4``. Defaults to 16.
        widen_factor (int): Width multiplier ``k``. Defaults to 2.
        drop_rate (float): Dropout inside every block. Defaults to 0.
        out_indices (Sequence[int]): Stages to return. Defaults to (2, ).
        final_norm (bool): Whether the last stage ends with the network's
            final BN-ReLU. Defaults to True.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalization config. Defaults to BN.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Kaiming for convolutions and ones for norms.
    """

    num_stages = 3
    strides = (1, 2, 2)

    def __init__(self,
                 depth: int = 16,
                 widen_factor: int = 2,
                 drop_rate: float = 0.,
                 out_indices: Sequence[int] = (2, ),
                 final_norm: bool = True,
                 conv_cfg=None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=(dict(type='Kaiming', layer=['Conv2d']),
                           dict(
                               type='Constant',
                               val=1,
                               layer=['_BatchNorm', 'GroupNorm']))) -> None:
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(
                f'WideResNet_CIFAR depth must be 6n + 4 with n >= 1 (10, 16, '
                f'22, 28, 40, ...), got {depth}.')
        out_indices = tuple(i % self.num_stages for i in out_indices)
        if not out_indices:
            raise ValueError('out_indices must name at least one stage.')
        self.depth = depth
        self.widen_factor = widen_factor
        self.drop_rate = drop_rate
        self.out_indices = out_indices
        self.final_norm = final_norm
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.blocks_per_stage = (depth - 4) // 6
        self.stage_channels = tuple(
            16 * 2**i * widen_factor for i in range(self.num_stages))

        self.stem = build_conv_layer(conv_cfg, 3, 16, 3, 1, 1, bias=False)
        in_channels = 16
        self.stages = nn.ModuleList()
        for index, stride in enumerate(self.strides):
            self.stages.append(
                self.make_stage(index, in_channels, stride, final_norm))
            in_channels = self.stage_channels[index]

    def make_stage(self,
                   index: int,
                   in_channels: int,
                   stride: int,
                   final_norm: bool = True) -> nn.Sequential:
        """Build a freshly initialised copy of one stage.

        Args:
            index (int): Which stage (0-based).
            in_channels (int): Channels of its input.
            stride (int): Stride of its first block.
            final_norm (bool): Whether the last stage ends with BN-ReLU.
                Defaults to True, as LSSKD's branch copies of the last
                stage (HSSAKD's auxiliary classifiers end with one).

        Returns:
            nn.Sequential: The stage.
        """
        channels = self.stage_channels[index]
        layers = [
            PreActBasicBlock(in_channels if i == 0 else channels, channels,
                             stride if i == 0 else 1, self.drop_rate,
                             self.conv_cfg, self.norm_cfg)
            for i in range(self.blocks_per_stage)
        ]
        if final_norm and index == self.num_stages - 1:
            layers += [
                build_norm_layer(self.norm_cfg, channels)[1],
                nn.ReLU(inplace=True)
            ]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
