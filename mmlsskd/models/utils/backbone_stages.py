"""Find the stages of any mmpretrain backbone, and choose the ones LSSKD
hangs its auxiliary branches on.

The stages are found by probing, not from a table of backbone types: the
backbone is built with ever fewer ``out_indices`` until every index it is
asked for is one it returns, and one dry-run forward gives every stage's
shape. This works for every backbone whose ``out_indices`` selects outputs
in order (the ResNet family, RegNet, MobileNets, EfficientNet, ShuffleNet,
DenseNet, RepVGG, VGG, ConvNeXt, PoolFormer, Swin, vision transformers and
the project's CIFAR backbones).
"""
import copy
import inspect
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmpretrain.registry import MODELS
from torch import nn

from ...utils.errors import config_error
from .forward_checks import backbone_settings_error

StageShape = Tuple[int, ...]  # (C, H, W) of a feature map, (C, ) of a vector

# Sequences whose length hints at a backbone's number of outputs.
_STAGE_COUNTS = ('num_stages', 'num_layers')
_STAGE_LISTS = ('layers', 'stages', 'res_layers', 'network', 'features')
# Exceptions mmpretrain's backbones raise for an out-of-range out_indices.
_OUT_OF_RANGE = (AssertionError, ValueError, IndexError, KeyError)


@dataclass
class BackboneStages:
    """What a backbone can return, and what its classifier reads.

    Attributes:
        backbone (str): The backbone's type name, for messages.
        shapes (list[tuple]): The shape of every output index the backbone
            can return, in index order: (C, H, W) for feature maps, (C, )
            for vectors (pooled outputs, class tokens, logits).
        classifier (tuple[int]): The indices the configured backbone
            returns, i.e. what the classifier's neck and head read,
            non-negative and in increasing order.
        classifier_shapes (list[tuple]): The shapes of those outputs, as the
            configured backbone returns them.
        featmap_fix (str): The settings that make the backbone return
            feature maps, for messages.
    """
    backbone: str
    shapes: List[StageShape]
    classifier: Tuple[int, ...]
    classifier_shapes: List[StageShape]
    featmap_fix: str

    @property
    def num_outputs(self) -> int:
        """int: How many output indices the backbone has."""
        return len(self.shapes)

    def is_feature_map(self, index: int) -> bool:
        return len(self.shapes[index]) == 3

    def require_feature_maps(self, indices: Sequence[int]) -> None:
        """Refuse, with the backbone's fix, outputs that are not feature
        maps (the branches convolve them)."""
        for index in indices:
            if not self.is_feature_map(index):
                raise config_error(
                    'model.architecture.backbone', f'output {index} of '
                    f'{self.backbone} has shape (N, '
                    f'{", ".join(map(str, self.shapes[index]))}), but the '
                    f'auxiliary branches need (N, C, H, W) feature maps from '
                    f'every stage they hang on, the classifier\'s included',
                    self.featmap_fix)


def describe_output(out) -> str:
    """``'a tensor of shape (1, 16)'``, or the type of a non-tensor."""
    if isinstance(out, torch.Tensor):
        return f'a tensor of shape {tuple(out.shape)}'
    return f'a {type(out).__name__}'


def featmap_fix(backbone: nn.Module, outs: Sequence) -> str:
    """The settings that make this backbone return feature maps, and its
    classifier take them (each followed literally in a test)."""
    arguments = inspect.signature(type(backbone).__init__).parameters
    if 'out_type' in arguments:  # vision transformers
        return ("Set backbone=dict(out_type='featmap') and "
                "neck=dict(type='GlobalAveragePooling'): the classifier then "
                "reads the average of the patch tokens, not the class token.")
    num_classes = getattr(backbone, 'num_classes', 0)
    maps = [o for o in outs if torch.is_tensor(o) and o.dim() == 4]
    if isinstance(num_classes, int) and num_classes > 0 and maps:
        # VGG-style: the backbone ends with its own fully connected layers.
        return (f"Set backbone=dict(num_classes=-1), "
                f"neck=dict(type='GlobalAveragePooling') and "
                f"head=dict(type='LinearClsHead', num_classes={num_classes}, "
                f"in_channels={maps[-1].shape[1]}): the backbone's fully "
                f"connected layers give way to a linear head on the pooled "
                f"last stage.")
    if 'gap_before_final_norm' in arguments:  # ConvNeXt and its kin
        return ('Set backbone=dict(gap_before_final_norm=False) and '
                "neck=dict(type='GlobalAveragePooling'); the final norm then "
                'normalises the feature map before the pooling.')
    return 'Configure the backbone to return (N, C, H, W) feature maps.'


def dry_run(backbone: nn.Module, input_size: Tuple[int, int]) -> tuple:
    """The backbone's outputs on one zero image, without gradients, in eval
    mode (the backbone is left in the mode it had)."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            outs = backbone(torch.zeros(1, 3, *input_size))
    except RuntimeError as error:
        # E.g. fully connected layers sized for another image size.
        raise config_error(
            'aux_neck.input_size', f'{type(backbone).__name__} fails on a '
            f'{input_size[0]}x{input_size[1]} image ({error})', 'Set '
            'aux_neck.input_size to the size of the training images after '
            'the train pipeline (32 for CIFAR, 224 for ImageNet recipes).'
        ) from error
    finally:
        backbone.train(was_training)
    return (outs, ) if torch.is_tensor(outs) else tuple(outs)


def _shape(out) -> StageShape:
    if torch.is_tensor(out):
        return tuple(out.shape[1:])
    # A (patch tokens, class token)-style tuple: describe it by its parts.
    return tuple(len(out) * [0])


def _output_count_hint(backbone: nn.Module) -> int:
    """An upper guess of the number of output indices, from the usual
    attribute names; the probe only counts down from it."""
    hints = [getattr(backbone, n) for n in _STAGE_COUNTS
             if isinstance(getattr(backbone, n, None), int)]
    hints += [len(getattr(backbone, n)) for n in _STAGE_LISTS
              if isinstance(getattr(backbone, n, None), (list, nn.ModuleList,
                                                         nn.Sequential))]
    return max(hints, default=8)


def probe_backbone_stages(
        backbone_cfg: dict,
        input_size: Tuple[int, int],
        branch_out_indices: Optional[Sequence[int]] = None
) -> BackboneStages:
    """Every output index a backbone config can return, with its shape.

    Args:
        backbone_cfg (dict): The classifier's backbone config, as written.
        input_size (tuple[int, int]): Height and width of the dummy image.
        branch_out_indices (Sequence[int], optional): The stages the config
            asks branches for, if it does, for a message about both.

    Returns:
        BackboneStages: The shapes and what the configured backbone
        returns.

    Raises:
        LSSKDConfigError: If the backbone has no ``out_indices`` to choose
            its outputs with.
    """
    # The probe's backbones initialise their weights from the global random
    # stream; without the fork, the model built after the probe would start
    # from other weights than the same seed gave before the probe existed.
    with torch.random.fork_rng(devices=[]):
        return _probe_backbone_stages(backbone_cfg, input_size,
                                      branch_out_indices)


def _probe_backbone_stages(backbone_cfg: dict, input_size: Tuple[int, int],
                           branch_out_indices: Optional[Sequence[int]]
                           ) -> BackboneStages:
    try:
        configured = MODELS.build(copy.deepcopy(backbone_cfg))
    except AssertionError as error:
        raise backbone_settings_error(backbone_cfg, error,
                                      branch_out_indices) from error
    name = type(configured).__name__
    if getattr(configured, 'out_indices', None) is None:
        raise config_error(
            'model.out_indices', f'{name} has no out_indices, so LSSKD '
            f'cannot ask it for the stages its branches hang on',
            'Use a backbone that returns intermediate stages through '
            'out_indices, give LSSKD(aux_neck=...) a neck of your own, or '
            'set LSSKD(out_indices=None) to hang a branch on each output '
            'the backbone returns as configured (with loss_feat=None if '
            'the classifier\'s neck changes the feature size, as '
            'HRNet\'s does).')
    returned = dry_run(configured, input_size)
    for count in range(_output_count_hint(configured) + 2, 0, -1):
        cfg = dict(copy.deepcopy(backbone_cfg), out_indices=tuple(
            range(count)))
        try:
            candidate = MODELS.build(cfg)
        except _OUT_OF_RANGE:
            continue
        outs = dry_run(candidate, input_size)
        if len(outs) == count:
            break
    else:  # pragma: no cover - every backbone returns at least index 0
        raise config_error(
            'model.architecture.backbone', f'{name} returned no output for '
            f'out_indices=(0, )', 'Check its out_indices settings.')
    classifier = tuple(
        sorted(i % count for i in _configured_indices(configured)))
    if len(classifier) != len(returned):
        raise config_error(
            'model.architecture.backbone', f'{name} returns {len(returned)} '
            f'outputs for out_indices={classifier}, so LSSKD cannot tell '
            f'which stage each one is', 'Give the backbone one out index '
            'per output.')
    return BackboneStages(name, [_shape(o) for o in outs], classifier,
                          [_shape(o) for o in returned],
                          featmap_fix(candidate, outs))


def _configured_indices(backbone: nn.Module) -> Sequence[int]:
    indices = backbone.out_indices
    return (indices, ) if isinstance(indices, int) else indices


def choose_branch_stages(stages: BackboneStages,
                         max_branches: int = 4) -> Tuple[int, ...]:
    """The stages LSSKD hangs a branch on when the config does not say.

    A stage is a run of outputs at one spatial resolution, and a branch
    hangs after the last output of each of the deepest ``max_branches``
    resolutions up to the one the classifier reads (HSSAKD's branches sit
    after the four stages of an ImageNet ResNet, the three of a CIFAR
    ResNet). A backbone that keeps one resolution throughout (a vision
    transformer) gets ``max_branches`` evenly spaced blocks. The stages the
    classifier reads are always included, its last one last.

    Args:
        stages (BackboneStages): The probed backbone.
        max_branches (int): The most branches to attach. Defaults to 4.

    Returns:
        tuple[int]: Increasing output indices, ending with the classifier's.
    """
    last = stages.classifier[-1]
    maps = [i for i in range(last + 1) if stages.is_feature_map(i)]
    resolutions: Dict[tuple, int] = {}
    for index in maps:  # in index order: the last of each resolution wins
        resolutions[stages.shapes[index][1:]] = index
    if len(resolutions) > 1:
        chosen = sorted(resolutions.values())[-max_branches:]
    else:
        count = min(max_branches, len(maps))
        chosen = [maps[round((j + 1) * len(maps) / count) - 1]
                  for j in range(count)]
    return tuple(sorted(set(chosen) | set(stages.classifier)))


def check_branch_stages(stages: BackboneStages,
                        out_indices: Sequence[int]) -> Tuple[int, ...]:
    """Check a user's ``LSSKD(out_indices=...)`` against the backbone.

    Returns:
        tuple[int]: The indices, non-negative and increasing.

    Raises:
        LSSKDConfigError: If an index does not exist, or the indices leave
            out a stage the classifier reads or go past its last one.
    """
    count = stages.num_outputs
    for index in out_indices:
        if not -count <= index < count:
            raise config_error(
                'model.out_indices', f'{tuple(out_indices)} names output '
                f'{index}, but {stages.backbone} has outputs 0..{count - 1}',
                'Leave out_indices out and LSSKD picks the stages, or name '
                f'outputs that exist, e.g. out_indices='
                f'{choose_branch_stages(stages)}.')
    indices = tuple(sorted({i % count for i in out_indices}))
    missing = [i for i in stages.classifier if i not in indices]
    beyond = [i for i in indices if i > stages.classifier[-1]]
    if missing or beyond:
        problem = (f'leaves out stage {missing[0]}' if missing else
                   f'goes past it to stage {beyond[0]}')
        raise config_error(
            'model.out_indices', f'{tuple(out_indices)} {problem}, but the '
            f'classifier reads {stages.backbone} output '
            f'{stages.classifier[-1]} (its out_indices='
            f'{stages.classifier}); its neck and head would get another '
            f'stage than without LSSKD, and the backbone after it no '
            f'gradient from the classifier', 'Leave out_indices out and '
            f'LSSKD picks the stages ({choose_branch_stages(stages)} here), '
            f'or end them with the classifier\'s stage.')
    return indices
