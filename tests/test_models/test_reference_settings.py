"""The settings where the official HSSAKD and PS-KD codes are followed."""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmpretrain.models.backbones.resnet import BasicBlock
from mmpretrain.registry import MODELS

import mmlsskd  # noqa: F401
from mmlsskd.models.backbones.wide_resnet import PreActBasicBlock
from conftest import ROOT

STUDENTS = ['resnet20', 'resnet18', 'resnet8x4', 'wrn16-2', 'mobilenet-v2']


def shipped(path):
    return Config.fromfile(str(ROOT / 'configs' / path))


@pytest.mark.parametrize('path', [
    'baselines/resnet20_1xb64-240e_cifar100.py',
    'baselines/mobilenet-v2_1xb64-240e_cifar100.py',
    'pskd/pskd_resnet20_1xb64-240e_cifar100.py',
    'lsskd/lsskd_wrn16-2_1xb64-240e_cifar100.py',
])
def test_cifar_schedules_use_nesterov_sgd(path):
    cfg = shipped(path)
    model = torch.nn.Linear(2, 2)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults['nesterov'] is True
    assert optimizer.defaults['momentum'] == 0.9


@pytest.mark.parametrize('student', STUDENTS)
def test_baseline_and_lsskd_start_from_the_reference_init(student):
    for path in (f'baselines/{student}_1xb64-240e_cifar100.py',
                 f'lsskd/lsskd_{student}_1xb64-240e_cifar100.py'):
        torch.manual_seed(0)
        model = MODELS.build(shipped(path).model)
        model.init_weights()
        classifier = getattr(model, 'architecture', model)
        # No residual BN starts at zero (mmpretrain's zero_init_residual).
        for m in classifier.backbone.modules():
            if isinstance(m, BasicBlock):
                assert torch.all(m.norm2.weight == 1), path
        # PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        # std 1/sqrt(3 fan_in); mmpretrain's head default has std 0.01.
        fc = classifier.head.fc
        expected = 1 / (3 * fc.in_features)**0.5
        assert fc.weight.std().item() == pytest.approx(expected, rel=0.1)
        if hasattr(model, 'aux_head'):
            for branch_fc in model.aux_head.classifiers:
                assert branch_fc.weight.std().item() == pytest.approx(
                    1 / (3 * branch_fc.in_features)**0.5, rel=0.1)


def test_wrn_last_branch_reads_the_raw_last_block_output():
    model = MODELS.build(shipped('lsskd/lsskd_wrn16-2_1xb64-240e_cifar100.py')
                         .model)
    backbone = model.architecture.backbone
    # The backbone's last stage ends with a block, not the final BN-ReLU,
    # and the classifier's neck applies that BN-ReLU.
    assert isinstance(backbone.stages[-1][-1], PreActBasicBlock)
    assert type(model.architecture.neck).__name__ == 'FinalNormPooling'
    # The branch after the last stage is a stride-1 copy of the stage that
    # starts with its own pre-activation and ends with BN-ReLU (HSSAKD).
    last_branch = model.aux_neck.branches[-1]
    assert isinstance(last_branch[0], PreActBasicBlock)
    assert isinstance(last_branch[-1], torch.nn.ReLU)

    seen = {}
    last_branch.register_forward_hook(
        lambda m, args, out: seen.setdefault('input', args[0]))
    model.train()
    x = torch.randn(2, 3, 32, 32)
    views = model.view_transform(x)
    raw = backbone(views)[-1]
    model.aux_neck(backbone(views))
    torch.testing.assert_close(seen['input'], raw)
    # The raw output is not normalised: it has negative entries, which a
    # BN-ReLU output cannot have.
    assert raw.min() < 0


def test_wrn_with_the_norm_in_the_neck_is_the_same_network():
    """final_norm=False + FinalNormPooling computes what final_norm=True +
    global average pooling computes, on the same weights."""
    common = dict(type='WideResNet_CIFAR', depth=16, widen_factor=2)
    head = dict(type='LinearClsHead', num_classes=10, in_channels=128)
    torch.manual_seed(0)
    inside = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(common, final_norm=True),
        neck=dict(type='GlobalAveragePooling'), head=head))
    outside = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(common, final_norm=False),
        neck=dict(type='FinalNormPooling', in_channels=128), head=head))
    state = inside.state_dict()
    norm = {k: state.pop(f'backbone.stages.2.2.{k}')
            for k in ('weight', 'bias', 'running_mean', 'running_var',
                      'num_batches_tracked')}
    state.update({f'neck.norm.{k}': v for k, v in norm.items()})
    outside.load_state_dict(state)
    x = torch.randn(3, 3, 32, 32)
    for mode in ('eval', 'train'):
        getattr(inside, mode)(), getattr(outside, mode)()
        torch.testing.assert_close(
            outside(x, mode='tensor'), inside(x, mode='tensor'))
