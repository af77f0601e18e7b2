import pytest
import torch
from mmpretrain.models.backbones.resnet import BasicBlock, Bottleneck

from mmlsskd.models import AuxiliaryBranchNeck

BACKBONES = {
    'ResNet_CIFAR': (dict(type='ResNet_CIFAR', depth=18, base_channels=4,
                          out_indices=(0, 1, 2, 3)), 32),
    'ResNet': (dict(type='ResNet', depth=18, base_channels=4,
                    stem_channels=4, out_indices=(0, 1, 2, 3)), 64),
    'ResNeXt': (dict(type='ResNeXt', depth=50, groups=2, width_per_group=2,
                     base_channels=4, stem_channels=4,
                     out_indices=(1, 2, 3)), 64),
    'MobileNetV2': (dict(type='MobileNetV2', widen_factor=0.25,
                         out_indices=(1, 2, 4, 7)), 64),
    'ShuffleNetV2': (dict(type='ShuffleNetV2', widen_factor=0.5,
                          out_indices=(0, 1, 2, 3)), 64),
    'ConvNeXt': (dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1],
                                                 channels=[8, 16, 32, 64]),
                      out_indices=(0, 1, 2, 3), gap_before_final_norm=False),
                 64),
    # A ResNet subclass with stages of its own widths (no expansion).
    'RegNet': (dict(type='RegNet', arch='regnetx_400mf',
                    out_indices=(0, 1, 2, 3)), 64),
}


@pytest.mark.parametrize('name', list(BACKBONES))
def test_branches_end_at_last_stage_width(name):
    from mmpretrain.registry import MODELS
    backbone_cfg, size = BACKBONES[name]
    neck = AuxiliaryBranchNeck(backbone=backbone_cfg, input_size=size)
    backbone = MODELS.build(backbone_cfg)
    stages = backbone(torch.randn(2, 3, size, size))
    assert neck.num_branches == len(stages) >= 2
    feats = neck(stages)
    last_channels = stages[-1].shape[1]
    assert [tuple(f.shape) for f in feats] == [(2, last_channels)] * len(
        stages)
    # Training works through every branch.
    sum(f.sum() for f in feats).backward()
    assert all(p.grad is not None for p in neck.parameters()
               if p.requires_grad)


def test_resnet_cifar_follows_hssakd():
    neck = AuxiliaryBranchNeck(
        backbone=BACKBONES['ResNet_CIFAR'][0], input_size=32)
    # ResNet-18: 4 stages of 2 BasicBlocks, widths 4/8/16/32.
    assert neck.stage_shapes == [(4, 32, 32), (8, 16, 16), (16, 8, 8),
                                 (32, 4, 4)]
    # Branch s copies stages s+1..4; the last one is stage 4 at stride 1.
    assert [len(b) for b in neck.branches[:3]] == [3, 2, 1]
    first = neck.branches[0]
    assert [len(stage) for stage in first] == [2, 2, 2]
    assert all(isinstance(block, BasicBlock) for block in first[0])
    assert [stage[0].conv1.stride for stage in first] == [(2, 2)] * 3
    last = neck.branches[3]
    assert len(last) == 2 and last[0].conv1.stride == (1, 1)
    assert last[0].in_channels == last[0].out_channels == 32


def test_resnet50_branch_blocks_are_bottlenecks():
    neck = AuxiliaryBranchNeck(
        backbone=dict(type='ResNet', depth=50, base_channels=4,
                      stem_channels=4, out_indices=(2, 3)),
        input_size=64)
    # ResNet-50 stage 4 has 3 bottlenecks; the branches copy it twice.
    assert [len(b) for b in neck.branches] == [1, 3]
    assert all(isinstance(block, Bottleneck) for block in neck.branches[1])


def test_single_stage_backbone_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r'out_indices=\(0, 1, 2, 3\)'):
        AuxiliaryBranchNeck(
            backbone=dict(type='ResNet_CIFAR', depth=18, base_channels=4),
            input_size=32)


def test_vector_outputs_are_rejected():
    with pytest.raises(ValueError, match='feature maps'):
        AuxiliaryBranchNeck(
            backbone=dict(type='VisionTransformer', arch=dict(
                embed_dims=8, num_layers=2, num_heads=2,
                feedforward_channels=8), img_size=32, patch_size=8,
                out_indices=(0, 1)),
            input_size=32)


def test_stages_that_do_not_shrink_by_an_integer_factor_are_rejected():
    # At 36x36 MobileNetV2's stages are 9x9 then 5x5: no integer stride.
    with pytest.raises(ValueError, match='one integer factor'):
        AuxiliaryBranchNeck(
            backbone=dict(type='MobileNetV2', widen_factor=0.25,
                          out_indices=(1, 2, 4, 7)),
            input_size=36)


def test_resnet_stages_must_end_with_the_last():
    with pytest.raises(ValueError, match=r'end with the last stage \(3\)'):
        AuxiliaryBranchNeck(
            backbone=dict(type='ResNet_CIFAR', depth=18, base_channels=4,
                          out_indices=(0, 1, 2)),
            input_size=32)


@pytest.mark.parametrize('backbone, fix', [
    (dict(type='ConvNeXt', arch=dict(depths=[1, 1, 1, 1],
                                      channels=[8, 16, 32, 64]),
          out_indices=(0, 1, 2, 3)),
     'gap_before_final_norm=False'),
    (dict(type='VisionTransformer', arch=dict(embed_dims=16, num_layers=2,
                                              num_heads=2,
                                              feedforward_channels=32),
          img_size=32, patch_size=8, out_indices=(0, 1)),
     "out_type='featmap'"),
])
def test_pooled_outputs_are_refused_with_a_fix_that_works(backbone, fix):
    with pytest.raises(ValueError, match=fix):
        AuxiliaryBranchNeck(backbone=backbone, input_size=32)
    # Followed literally, the fix builds.
    key, value = fix.split('=')
    fixed = dict(backbone, **{key: eval(value)})
    assert AuxiliaryBranchNeck(backbone=fixed, input_size=32).num_branches \
        == len(backbone['out_indices'])
