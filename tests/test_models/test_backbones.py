"""The CIFAR backbones: stage shapes, parameter counts, LSSKD branches."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

MODEL_CONFIGS = Path(__file__).parents[2] / 'configs/_base_/models/cifar100'


def build(cfg: dict):
    model = MODELS.build(cfg)
    model.eval()
    return model


def stage_shapes(backbone, size: int = 32):
    with torch.no_grad():
        return [tuple(x.shape[1:]) for x in backbone(torch.zeros(2, 3, size,
                                                                 size))]


def num_params(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


# Parameter counts with the 100-way classifier, as published (He et al.;
# Zagoruyko & Komodakis; CRD and HSSAKD's tables), in millions.
@pytest.mark.parametrize('name, published', [
    ('resnet20', 0.28),
    ('resnet32', 0.47),
    ('resnet56', 0.86),
    ('resnet110', 1.74),
    ('resnet8x4', 1.23),
    ('resnet32x4', 7.43),
    ('wrn16-2', 0.70),
    ('wrn40-1', 0.57),
    ('wrn40-2', 2.26),
    ('resnet18', 11.22),
])
def test_published_parameter_counts(name, published):
    cfg = Config.fromfile(str(MODEL_CONFIGS / f'{name}.py')).model
    cfg['_scope_'] = 'mmpretrain'
    assert num_params(build(cfg.to_dict())) == pytest.approx(
        published, abs=0.006)


@pytest.mark.parametrize('cfg, shapes', [
    (dict(type='CIFARResNet', depth=20, out_indices=(0, 1, 2)),
     [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),
    (dict(
        type='CIFARResNet',
        depth=8,
        stem_channels=32,
        base_channels=64,
        out_indices=(0, 1, 2)), [(64, 32, 32), (128, 16, 16), (256, 8, 8)]),
    (dict(
        type='WideResNet_CIFAR', depth=16, widen_factor=2,
        out_indices=(0, 1, 2)), [(32, 32, 32), (64, 16, 16), (128, 8, 8)]),
    (dict(type='WideResNet_CIFAR', depth=40, widen_factor=1),
     [(64, 8, 8)]),
    (dict(type='MobileNetV2_CIFAR', out_indices=(1, 2, 4, 7)),
     [(24, 32, 32), (32, 16, 16), (96, 8, 8), (1280, 4, 4)]),
    (dict(type='ShuffleNetV1_CIFAR', groups=3, out_indices=(0, 1, 2)),
     [(240, 16, 16), (480, 8, 8), (960, 4, 4)]),
    (dict(type='ShuffleNetV2_CIFAR', out_indices=(0, 1, 2, 3)),
     [(116, 16, 16), (232, 8, 8), (464, 4, 4), (1024, 4, 4)]),
    (dict(type='ResNeXt_CIFAR', depth=50, out_indices=(0, 3)),
     [(256, 32, 32), (2048, 4, 4)]),
])
def test_stage_shapes_on_32x32(cfg, shapes):
    assert stage_shapes(build(cfg)) == shapes


def test_cifar_stems_keep_mmpretrain_parameter_names():
    # Only the stride changes, so mmpretrain's weights still load.
    for ours, theirs in (('MobileNetV2_CIFAR', 'MobileNetV2'),
                         ('ShuffleNetV2_CIFAR', 'ShuffleNetV2')):
        assert build(dict(type=ours)).state_dict().keys() == build(
            dict(type=theirs)).state_dict().keys()


def test_wide_resnet_is_pre_activation_with_final_bn_relu():
    wrn = build(dict(type='WideResNet_CIFAR', depth=16, widen_factor=2))
    assert [len(stage) for stage in wrn.stages] == [2, 2, 4]  # 2 blocks
    assert isinstance(wrn.stages[2][-2], torch.nn.BatchNorm2d)
    # The last stage's output went through ReLU.
    out = wrn(torch.randn(2, 3, 32, 32))[0]
    assert out.min() >= 0


def test_bad_depths_name_the_valid_ones():
    with pytest.raises(KeyError, match=r'6n \+ 2'):
        build(dict(type='CIFARResNet', depth=18))
    with pytest.raises(ValueError, match=r'6n \+ 4'):
        build(dict(type='WideResNet_CIFAR', depth=18))


@pytest.mark.parametrize('backbone, branch_blocks', [
    # HSSAKD: branch s copies stages s+1..S; the last one copies stage S.
    (dict(type='CIFARResNet', depth=20, out_indices=(0, 1, 2)),
     [[3, 3], [3], [3]]),
    (dict(
        type='WideResNet_CIFAR', depth=16, widen_factor=2,
        out_indices=(0, 1, 2)), [[2, 4], [4], [4]]),  # + BN-ReLU at the end
])
def test_auxiliary_branches_copy_the_later_stages(backbone, branch_blocks):
    neck = MODELS.build(
        dict(type='AuxiliaryBranchNeck', backbone=backbone, input_size=32))
    blocks = [[len(stage) for stage in branch] if isinstance(
        branch[0], torch.nn.Sequential) else [len(branch)]
              for branch in neck.branches]
    assert blocks == branch_blocks
    reference = build(backbone)
    feats = neck(reference(torch.randn(2, 3, 32, 32)))
    assert [tuple(f.shape) for f in feats] == [(2, neck.out_channels)] * 3
    # Fresh copies: no parameter is shared with the backbone.
    ours = {id(p) for p in neck.parameters()}
    assert not ours & {id(p) for p in reference.parameters()}
