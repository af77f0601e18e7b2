"""LSSKD on every mmpretrain backbone family named in docs/mixing.md: the
stages it picks, a build-time check, one training step, and a classifier
that computes what it computed without LSSKD."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmpretrain.models.backbones import ResNet_CIFAR
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionStore
from mmlsskd.utils import LSSKDConfigError

NUM_CLASSES = 5
GAP = dict(type='GlobalAveragePooling')


def linear(in_channels: int) -> dict:
    return dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                in_channels=in_channels)


def tiny_vit(**kwargs) -> dict:
    return dict(type='VisionTransformer', arch=dict(
        embed_dims=16, num_layers=8, num_heads=2, feedforward_channels=32),
                img_size=32, patch_size=4, **kwargs)


# name: (backbone as an mmpretrain config writes it, neck, head, input
# size, the stages LSSKD picks by default).
FAMILIES = {
    'ResNet': (dict(type='ResNet', depth=18, base_channels=8,
                    stem_channels=8), GAP, linear(64), 64, (0, 1, 2, 3)),
    'ResNeXt': (dict(type='ResNeXt', depth=50, groups=2, width_per_group=2,
                     base_channels=4, stem_channels=4), GAP, linear(128), 64,
                (0, 1, 2, 3)),
    'SEResNet': (dict(type='SEResNet', depth=50, base_channels=4,
                      stem_channels=4, se_ratio=4), GAP, linear(128), 64,
                 (0, 1, 2, 3)),
    'Res2Net': (dict(type='Res2Net', depth=50, base_channels=8,
                     stem_channels=8, scales=2, base_width=4), GAP,
                linear(256), 64, (0, 1, 2, 3)),
    'ResNet_CIFAR': (dict(type='ResNet_CIFAR', depth=18, base_channels=8),
                     GAP, linear(64), 32, (0, 1, 2, 3)),
    'RegNet': (dict(type='RegNet', arch='regnetx_400mf'), GAP, linear(384),
               64, (0, 1, 2, 3)),
    # Its outputs follow the transitions, so stages 2 and 3 share the last
    # resolution.
    'DenseNet': (dict(type='DenseNet', arch=dict(
        growth_rate=4, depths=[1, 1, 1, 1], init_channels=8)), GAP,
                 linear(8), 64, (0, 1, 3)),
    'RepVGG': (dict(type='RepVGG', arch=dict(
        num_blocks=[1, 1, 1, 1], width_factor=[0.125] * 4,
        group_layer_map=None, se_cfg=None)), GAP, linear(64), 64,
               (0, 1, 2, 3)),
    # Its stage 2 and final conv share a resolution: the conv, which the
    # classifier reads, takes the branch.
    'ShuffleNetV2': (dict(type='ShuffleNetV2', widen_factor=0.5), GAP,
                     linear(1024), 64, (0, 1, 3)),
    'MobileNetV2': (dict(type='MobileNetV2', widen_factor=0.25), GAP,
                    linear(1280), 64, (1, 2, 4, 7)),
    'MobileNetV3': (dict(type='MobileNetV3', arch='small'), GAP,
                    linear(576), 64, (1, 3, 8, 12)),
    'EfficientNet': (dict(type='EfficientNet', arch='b0'), GAP,
                     linear(1280), 64, (2, 3, 4, 6)),
    'PoolFormer': (dict(type='PoolFormer', arch=dict(
        layers=[1, 1, 1, 1], embed_dims=[8, 16, 32, 64],
        mlp_ratios=[2, 2, 2, 2], layer_scale_init_value=1e-5)), GAP,
                   linear(64), 64, (0, 2, 4, 6)),
    'ConvNeXt': (dict(type='ConvNeXt', arch=dict(
        depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
                      gap_before_final_norm=False), GAP, linear(64), 64,
                 (0, 1, 2, 3)),
    'Swin': (dict(type='SwinTransformer', arch=dict(
        embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]),
                  img_size=32, patch_size=2, window_size=2), GAP,
             linear(128), 32, (0, 1, 2, 3)),
    # One resolution throughout: four evenly spaced blocks, the last the
    # one the classifier reads.
    'DeiT': (tiny_vit(out_type='featmap'), GAP,
             dict(type='VisionTransformerClsHead', num_classes=NUM_CLASSES,
                  in_channels=16), 32, (1, 3, 5, 7)),
    'VGG': (dict(type='VGG', depth=11, num_classes=-1), GAP, linear(512),
            32, (1, 2, 3, 4)),
}


def architecture(backbone, neck, head) -> dict:
    return dict(type='ImageClassifier', backbone=copy.deepcopy(backbone),
                neck=neck, head=head)


def build_lsskd(arch: dict, size: int, **kwargs):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='LSSKD', architecture=arch,
        aux_neck=dict(type='AuxiliaryBranchNeck', input_size=size),
        **kwargs))
    model.init_weights()
    model.attach_past_predictions(PastPredictionStore(
        4, NUM_CLASSES, model.num_views, model.num_branches))
    return model


def batch(size: int):
    """Two images and their data samples."""
    return torch.randn(2, 3, size, size), [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i)
        for i in range(2)
    ]


def train_step(model, size: int) -> dict:
    """One SGD step on two images through ``train_step``."""
    optim = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    inputs, samples = batch(size)
    return model.train_step(dict(inputs=inputs, data_samples=samples), optim)


def assert_classifier_unchanged(model, arch: dict, size: int) -> None:
    """The wrapped classifier computes the function of the same classifier
    built without LSSKD, on the same weights (eval mode). Extra weights it
    may hold are the per-stage norms of the outputs only branches read."""
    plain = MODELS.build(arch)
    result = plain.load_state_dict(model.architecture.state_dict(),
                                   strict=False)
    assert not result.missing_keys
    assert all('norm' in k for k in result.unexpected_keys), \
        result.unexpected_keys
    images = assert_same_logits(model, plain, size)
    with torch.no_grad():
        predictions = model(images, [DataSample(), DataSample()],
                            mode='predict')
        expected = plain(images, [DataSample(), DataSample()],
                         mode='predict')
    for ours, theirs in zip(predictions, expected):
        torch.testing.assert_close(ours.pred_score, theirs.pred_score)


def assert_same_logits(model, plain, size: int) -> torch.Tensor:
    """Both in eval mode give the same logits on two random images (which
    are returned)."""
    model.eval()
    plain.eval()
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(images, mode='tensor'),
                                   plain(images, mode='tensor'))
    return images


@pytest.mark.parametrize('name', list(FAMILIES))
def test_family_trains_with_the_stages_lsskd_picks(name):
    backbone, neck, head, size, stages = FAMILIES[name]
    arch = architecture(backbone, neck, head)
    model = build_lsskd(arch, size)
    assert tuple(model.architecture.backbone.out_indices) == stages
    assert model.num_branches == len(stages)

    log_vars = train_step(model, size)
    assert torch.isfinite(log_vars['loss'])
    # Every backbone parameter gets a gradient (the optimizer step above
    # cleared them, so once more by hand).
    inputs, samples = batch(size)
    loss, _ = model.parse_losses(model.loss(inputs, samples))
    loss.backward()
    unreached = [n for n, p in model.architecture.backbone.named_parameters()
                 if p.requires_grad and p.grad is None]
    assert not unreached
    assert_classifier_unchanged(model, arch, size)


def test_explicit_out_indices_win():
    backbone, neck, head, size, _ = FAMILIES['MobileNetV2']
    model = build_lsskd(architecture(backbone, neck, head), size,
                        out_indices=(2, 4, 7))
    assert tuple(model.architecture.backbone.out_indices) == (2, 4, 7)
    assert model.num_branches == 3


@pytest.mark.parametrize('name, out_indices, problem', [
    # The README's old snippet on MobileNetV2: the head read stage 3.
    ('MobileNetV2', (0, 1, 2, 3), 'leaves out stage 7'),
    # On DeiT the classifier read block 3 and blocks 4-11 got no gradient.
    ('DeiT', (0, 1, 2, 3), 'leaves out stage 7'),
    ('ResNet', (0, 1, 2, 3, 4), 'names output 4'),
])
def test_out_indices_that_change_the_classifier_are_refused(
        name, out_indices, problem):
    backbone, neck, head, size, stages = FAMILIES[name]
    with pytest.raises(LSSKDConfigError, match=problem) as error:
        build_lsskd(architecture(backbone, neck, head), size,
                    out_indices=out_indices)
    # The message offers the stages LSSKD would pick.
    assert str(stages) in str(error.value)


@pytest.mark.parametrize('name, backbone, head, fix', [
    ('DeiT', tiny_vit(),
     dict(type='VisionTransformerClsHead', num_classes=NUM_CLASSES,
          in_channels=16),
     dict(backbone=dict(out_type='featmap'), neck=GAP)),
    ('ConvNeXt', dict(type='ConvNeXt', arch=dict(
        depths=[1, 1, 1, 1], channels=[8, 16, 32, 64])), linear(64),
     dict(backbone=dict(gap_before_final_norm=False), neck=GAP)),
    ('VGG', dict(type='VGG', depth=11, num_classes=NUM_CLASSES),
     dict(type='ClsHead'),
     dict(backbone=dict(num_classes=-1), neck=GAP,
          head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                    in_channels=512))),
])
def test_backbones_without_feature_maps_get_a_fix_that_works(
        name, backbone, head, fix):
    """As mmpretrain configures them (class token, pooled output, a
    backbone with its own fully connected layers), these backbones give the
    classifier no feature map: refused at build time with the settings that
    fix it, which, applied as written, train."""
    size = 224 if name == 'VGG' else 32  # VGG's classifier wants 7x7
    with pytest.raises(LSSKDConfigError) as error:
        build_lsskd(architecture(backbone, None, head), size)
    message = str(error.value)
    for key, value in fix.items():
        for setting, setting_value in (value.items() if key != 'neck' else
                                       [('type', value['type'])]):
            assert f'{setting}={setting_value!r}' in message or \
                f'{setting}={setting_value}' in message, (setting, message)
    fixed = architecture(dict(backbone, **fix['backbone']), fix['neck'],
                         fix.get('head', head))
    size = 32
    model = build_lsskd(fixed, size)
    assert torch.isfinite(train_step(model, size)['loss'])


class _ResNetWithUnusedWeight(ResNet_CIFAR):
    """A backbone with a parameter its forward never uses."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.unused_scale = torch.nn.Parameter(torch.ones(1))


class _ResNetWithIndexDependentOutput(ResNet_CIFAR):
    """A backbone whose last output changes with the outputs asked for."""

    def forward(self, x):
        outs = super().forward(x)
        if len(self.out_indices) > 1:
            return outs[:-1] + (outs[-1][:, :, :1], )
        return outs


@pytest.fixture
def registered_test_backbones():
    names = []
    for cls in (_ResNetWithUnusedWeight, _ResNetWithIndexDependentOutput):
        MODELS.register_module(module=cls, force=True)
        names.append(cls.__name__)
    yield
    for name in names:
        MODELS.module_dict.pop(name)


@pytest.mark.parametrize('backbone_type, match', [
    # A parameter no loss reaches: it would not train, DDP would stop.
    ('_ResNetWithUnusedWeight', r'1 trainable parameters of '
     r'_ResNetWithUnusedWeight get no gradient .*unused_scale'),
    # The classifier's input would change with the branches' stages.
    ('_ResNetWithIndexDependentOutput',
     r'reads outputs of shapes \[\(32, 1, 4\)\] .* '
     r'but \[\(32, 4, 4\)\] without them'),
])
def test_the_build_time_dry_run_refuses(registered_test_backbones,
                                        backbone_type, match):
    backbone = dict(type=backbone_type, depth=18, base_channels=4)
    with pytest.raises(LSSKDConfigError, match=match):
        build_lsskd(architecture(backbone, GAP, linear(32)), 32)


def test_the_docs_list_every_tested_family_with_its_stages():
    docs = (Path(__file__).parents[2] / 'docs/mixing.md').read_text()
    for name, (*_, stages) in FAMILIES.items():
        assert f'| {name} | {stages} |' in docs, name


@pytest.mark.parametrize('name', ['Swin', 'ConvNeXt', 'PoolFormer'])
def test_the_student_drops_the_norms_only_branches_read(name):
    """These backbones give every requested output a norm of its own: the
    exported student (the config's own out_indices) has the classifier's
    norm only, loads strictly and computes the same logits."""
    from mmlsskd.deployment import (drop_branch_only_weights,
                                    load_student_weights, student_checkpoint)
    backbone, neck, head, size, _ = FAMILIES[name]
    arch = architecture(backbone, neck, head)
    model = build_lsskd(arch, size)
    exported = student_checkpoint(
        dict(state_dict=model.state_dict(), meta={}), 'model.pth')
    student = MODELS.build(arch)
    dropped = drop_branch_only_weights(exported['state_dict'], student,
                                       model)
    assert dropped and all(k.startswith('backbone.norm') for k in dropped)
    load_student_weights(student, exported['state_dict'], 'model.pth',
                         'config.py')
    assert_same_logits(model, student, size)


def test_an_input_size_the_backbone_cannot_take_names_input_size():
    """VGG's own fully connected layers want 224x224 images: at 64 the
    stage probe fails, and says which setting to change."""
    vgg = architecture(dict(type='VGG', depth=11, num_classes=NUM_CLASSES),
                       None, dict(type='ClsHead'))
    with pytest.raises(LSSKDConfigError,
                       match=r'aux_neck.input_size: VGG fails on a 64x64 '
                       r'image \(mat1 and mat2 shapes cannot be multiplied.*'
                       r'Set aux_neck.input_size to the size of the '
                       r'training images'):
        build_lsskd(vgg, 64)


def hrnet_classifier() -> dict:
    """mmpretrain's HRNet-W18 classifier, as its config writes it: the
    neck fuses the four branches to 2048 channels."""
    return dict(
        type='ImageClassifier', backbone=dict(type='HRNet', arch='w18'),
        neck=[dict(type='HRFuseScales', in_channels=(18, 36, 72, 144)),
              GAP], head=linear(2048))


def test_hrnet_is_refused_with_the_fix_and_runs_as_the_fix_says():
    """HRNet has no ``out_indices``: ``'auto'`` is refused naming the
    three ways out; hanging the branches on its outputs as they are
    (``out_indices=None``) is refused before the first step while feature
    consistency would compare its 2048-channel fused feature with the
    branches'; without the term it builds and runs."""
    aux_neck = dict(type='AuxiliaryBranchNeck', input_size=32)
    with pytest.raises(LSSKDConfigError,
                       match=r'model.out_indices: HRNet has no out_indices.*'
                       r'set LSSKD\(out_indices=None\).*loss_feat=None'):
        MODELS.build(dict(type='LSSKD', architecture=hrnet_classifier(),
                          aux_neck=aux_neck))
    model = MODELS.build(dict(type='LSSKD', architecture=hrnet_classifier(),
                              aux_neck=aux_neck, out_indices=None))
    # PastPredictionHook's check before the first step.
    with pytest.raises(LSSKDConfigError,
                       match=r'model.loss_feat: feature consistency compares'
                       r'.*\(sizes \[.*\]\).*\(size 2048\)'):
        model.check_forward(torch.randn(2, 3, 32, 32))
    model = MODELS.build(dict(type='LSSKD', architecture=hrnet_classifier(),
                              aux_neck=aux_neck, out_indices=None,
                              loss_feat=None))
    assert model.num_branches == 4
    model.check_forward(torch.randn(2, 3, 32, 32))
