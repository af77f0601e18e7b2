from typing import Callable, List, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.models.backbones import ResNet
from mmpretrain.models.backbones.resnet import Bottleneck, ResLayer
from mmpretrain.registry import MODELS
from torch import nn

from ...utils.errors import config_error
from ..utils.backbone_stages import describe_output, dry_run, featmap_fix

StageShape = Tuple[int, int, int]  # (channels, height, width)


def probe_stage_shapes(backbone: nn.Module,
                       input_size: Tuple[int, int]) -> List[StageShape]:
    """Run a backbone once on a dummy image and read its stage shapes.

    Args:
        backbone (nn.Module): The backbone; it is left in the mode it had.
        input_size (tuple[int, int]): Height and width of the dummy image.

    Returns:
        list[tuple[int, int, int]]: (C, H, W) of every returned stage.
    """
    outs = dry_run(backbone, input_size)
    shapes = []
    for i, out in enumerate(outs):
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise config_error(
                'backbone', f'output {i} of {type(backbone).__name__} is '
                f'{describe_output(out)}, but the auxiliary branches need '
                f'(N, C, H, W) feature maps from every stage',
                featmap_fix(backbone, outs))
        shapes.append(tuple(out.shape[1:]))
    return shapes


@MODELS.register_module()
class AuxiliaryBranchNeck(BaseModule):
    """One auxiliary feature branch after every returned backbone stage.

    Branch ``s`` maps stage ``s``'s feature map to a pooled vector with the
    channel count of the last stage, so every branch is comparable with the
    backbone's own pooled feature (LSSKD, arXiv 2506.07055; HSSAKD, arXiv
    2107.13715).

    - ResNet-family backbones (every subclass of mmpretrain's ``ResNet``,
      e.g. ``ResNet_CIFAR``, ``ResNetV1d``, ``ResNeXt``, ``SEResNet``) follow
      HSSAKD: branch ``s`` is a fresh copy of the remaining stages
      ``s+1 .. S`` built by the backbone's own ``make_res_layer`` (same block
      type, block count and strides); the branch after the last stage is
      one more copy of the last stage with stride 1.
    - Backbones that can copy their own stages the same way (a
      ``make_stage(index, in_channels, stride)`` method plus
      ``stage_channels``, ``strides``, ``num_stages`` and ``out_indices``,
      as ``WideResNet_CIFAR``) get the same HSSAKD branches.
    - Any other backbone gets branches built from its stage shapes, read off
      a dry-run forward: one bottleneck residual block per remaining stage,
      with that stage's channels and downsampling, and one stride-1 block
      after the last stage.

    Args:
        backbone (dict): Config of the classifier's backbone. A reference
            instance is built once to read its structure; none of its weights
            are kept or shared.
        input_size (int | tuple[int, int]): Training image size, used for
            the dry-run forward. Defaults to 224.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to Kaiming for convolutions and ones for norm layers,
            as mmpretrain's ResNet.
    """

    def __init__(self,
                 backbone: dict,
                 input_size: Union[int, Tuple[int, int]] = 224,
                 init_cfg=(dict(type='Kaiming', layer=['Conv2d']),
                           dict(
                               type='Constant',
                               val=1,
                               layer=['_BatchNorm', 'GroupNorm']))):
        super().__init__(init_cfg=list(init_cfg) if init_cfg else None)
        if isinstance(input_size, int):
            input_size = (input_size, input_size)
        reference = MODELS.build(backbone)
        shapes = probe_stage_shapes(reference, tuple(input_size))
        if len(shapes) < 2:
            raise config_error(
                'out_indices', f'{type(reference).__name__} returns '
                f'{len(shapes)} stage(s), but LSSKD needs at least two to '
                f'distil from deep to shallow', 'Make it return every stage, '
                'e.g. backbone=dict(out_indices=(0, 1, 2, 3)) for a 4-stage '
                'ResNet, or set LSSKD(out_indices=...).')
        self.stage_shapes = shapes
        self.out_channels = shapes[-1][0]
        # RegNet subclasses ResNet but builds stages of its own widths
        # (no ``expansion``): it gets the generic branches.
        if isinstance(reference, ResNet) and hasattr(reference, 'expansion'):
            branches = self._stage_copy_branches(
                reference, *self._resnet_stage_factory(reference))
        elif callable(getattr(reference, 'make_stage', None)):
            branches = self._stage_copy_branches(reference,
                                                 reference.stage_channels,
                                                 reference.make_stage)
        else:
            branches = self._generic_branches(shapes)
        self.branches = nn.ModuleList(branches)
        self.pool = nn.AdaptiveAvgPool2d(1)

    @property
    def num_branches(self) -> int:
        """int: One branch per returned backbone stage."""
        return len(self.branches)

    @staticmethod
    def _resnet_stage_factory(backbone: ResNet):
        # ``make_res_layer`` is overridden by ResNeXt, SEResNet, etc. to add
        # their block arguments, so calling it keeps the block type exact.
        widths = [
            backbone.base_channels * backbone.expansion * 2**i
            for i in range(backbone.num_stages)
        ]

        def make_stage(index: int, in_channels: int, stride: int):
            return backbone.make_res_layer(
                block=backbone.block,
                num_blocks=backbone.stage_blocks[index],
                in_channels=in_channels,
                out_channels=widths[index],
                expansion=backbone.expansion,
                stride=stride,
                dilation=backbone.dilations[index],
                style=backbone.style,
                avg_down=backbone.avg_down,
                with_cp=backbone.with_cp,
                conv_cfg=backbone.conv_cfg,
                norm_cfg=backbone.norm_cfg)

        return widths, make_stage

    @staticmethod
    def _stage_copy_branches(backbone: nn.Module, widths: Sequence[int],
                             make_stage: Callable) -> List[nn.Module]:
        stages = list(backbone.out_indices)
        last = backbone.num_stages - 1
        if stages != sorted(stages) or stages[-1] != last:
            raise config_error(
                'out_indices', f'the auxiliary branches of '
                f'{type(backbone).__name__} copy the stages after each '
                f'returned one, so out_indices must be increasing and end '
                f'with the last stage ({last}), got {tuple(stages)}',
                f'Return every stage: out_indices={tuple(range(last + 1))}.')
        branches = []
        for stage in stages[:-1]:
            branches.append(
                nn.Sequential(*[
                    make_stage(j, widths[j - 1], backbone.strides[j])
                    for j in range(stage + 1, last + 1)
                ]))
        branches.append(make_stage(last, widths[last], 1))
        return branches

    @staticmethod
    def _generic_branches(shapes: Sequence[StageShape]) -> List[nn.Module]:

        def block(in_channels: int, out_channels: int, stride: int):
            expansion = 4 if out_channels % 4 == 0 else 1
            return ResLayer(
                Bottleneck,
                num_blocks=1,
                in_channels=in_channels,
                out_channels=out_channels,
                expansion=expansion,
                stride=stride)

        strides = []
        for (c0, h0, w0), (c1, h1, w1) in zip(shapes[:-1], shapes[1:]):
            if h0 % h1 or w0 % w1 or h0 // h1 != w0 // w1:
                raise config_error(
                    'aux_neck', f'cannot build branches between stages of '
                    f'shape {(c0, h0, w0)} and {(c1, h1, w1)}: the spatial '
                    f'size must shrink by one integer factor',
                    'Return only stages whose resolutions divide each other, '
                    'or train at an input_size that keeps them divisible.')
            strides.append(h0 // h1)
        branches = []
        for s in range(len(shapes) - 1):
            branches.append(
                nn.Sequential(*[
                    block(shapes[j][0], shapes[j + 1][0], strides[j])
                    for j in range(s, len(shapes) - 1)
                ]))
        last_channels = shapes[-1][0]
        branches.append(block(last_channels, last_channels, 1))
        return branches

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Pooled branch features.

        Args:
            inputs (Sequence[torch.Tensor]): Every returned backbone stage,
                each of shape (N, C_s, H_s, W_s).

        Returns:
            tuple[torch.Tensor]: One (N, D) feature per branch, D the last
            stage's channels.
        """
        if len(inputs) != len(self.branches):
            raise config_error(
                'aux_neck', f'built for {len(self.branches)} stages but got '
                f'{len(inputs)} feature maps', 'Build it from the backbone '
                'config whose stages it receives.')
        return tuple(
            self.pool(branch(x)).flatten(1)
            for branch, x in zip(self.branches, inputs))
