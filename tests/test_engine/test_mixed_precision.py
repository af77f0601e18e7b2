"""LSSKD trained with ``tools/train.py --amp``.

Without a GPU ``--amp`` trains in bfloat16 (``BF16AmpOptimWrapper``); with
one, in float16 with mmengine's ``AmpOptimWrapper``. The float16 path is
tested by letting mmengine believe there is a GPU: its wrapper's
``optim_context`` then autocasts the LSSKD forward to the CPU's autocast type
(bfloat16) and its GradScaler, which disables itself without CUDA, wraps the
backward and the step.
"""
import importlib.util
import logging

import pytest
import torch
from conftest import ROOT, hook_of, make_cfg
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.runner import Runner

from mmlsskd.engine import BF16AmpOptimWrapper
from mmlsskd.utils import LSSKDConfigError

CONFIG = str(ROOT / 'configs/lsskd/resnet18_cifar100.py')


def train_script():
    spec = importlib.util.spec_from_file_location('train',
                                                  ROOT / 'tools/train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def amp_cfg(options, tmp_path, monkeypatch, *extra_args, native_bf16=True,
            amx=True, flag='--amp'):
    """The config ``tools/train.py CONFIG --amp`` trains, on tiny data, on
    a CPU that runs bfloat16 natively or not, with AMX or without (whatever
    this one does); ``flag=None`` leaves --amp out."""
    train = train_script()
    monkeypatch.setattr(train, 'cpu_runs_bf16_natively',
                        lambda: native_bf16)
    monkeypatch.setattr(train, 'cpu_has_amx', lambda: amx)
    monkeypatch.setattr('sys.argv',
                        ['train.py', CONFIG, *[flag] * bool(flag),
                         *extra_args])
    cfg = train.merge_args(make_cfg(options, tmp_path), train.parse_args())
    cfg.work_dir = str(tmp_path)
    return cfg


def train_and_check_reduced_precision(cfg, wrapper_name: str) -> Runner:
    """Train ``cfg``; the backbone and branches ran in bfloat16, everything
    kept (weights, store) stayed float32 and finite. Returns its runner."""
    runner = Runner.from_cfg(cfg)
    conv_dtypes, aux_dtypes = set(), set()

    def record(dtypes):

        def hook(module, inputs, output):
            if module.training:  # validation runs in full precision
                dtypes.add(output.dtype)

        return hook

    runner.model.architecture.backbone.conv1.register_forward_hook(
        record(conv_dtypes))
    runner.model.aux_head.classifiers[0].register_forward_hook(
        record(aux_dtypes))
    runner.train()

    assert type(runner.optim_wrapper).__name__ == wrapper_name
    # The backbone and the auxiliary branches ran in bfloat16 ...
    assert conv_dtypes == {torch.bfloat16}
    assert aux_dtypes == {torch.bfloat16}
    # ... every loss term stayed finite over both epochs ...
    for key in ('loss_cls', 'loss_hier', 'loss_kl', 'loss_feat'):
        values = runner.message_hub.log_scalars[f'train/{key}'].data[0]
        assert len(values) and all(map(torch.isfinite,
                                       torch.tensor(values))), key
    # ... the weights stayed float32 and finite ...
    for name, param in runner.model.named_parameters():
        assert param.dtype == torch.float32, name
        assert torch.isfinite(param).all(), name
    # ... and the store kept float32 distributions of every sample.
    store = hook_of(runner).store
    assert store.final.dtype == torch.float32
    assert (store.written_epoch == 1).all()
    assert torch.allclose(store.final.sum(1), torch.ones(store.num_samples),
                          atol=1e-2)
    assert torch.allclose(store.branches.sum(-1),
                          torch.ones(store.branches.shape[:-1]), atol=1e-2)
    return runner


# CutMix on half of the batches, as the COC configs mix them.
CUTMIX = dict(model=dict(architecture=dict(train_cfg=dict(
    augments=[dict(type='CutMix', alpha=1.0)], probs=[0.5]))))


@pytest.mark.parametrize('mixing', [False, True])
def test_amp_without_gpu_trains_lsskd_in_bfloat16(tiny_cfg_options,
                                                  tmp_path, monkeypatch,
                                                  mixing):
    cfg = amp_cfg(tiny_cfg_options, tmp_path, monkeypatch)
    if mixing:
        cfg.merge_from_dict(CUTMIX)
    assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    straight = train_and_check_reduced_precision(cfg, 'BF16AmpOptimWrapper')

    # Its checkpoint resumes (its store holds rows rounded to bfloat16)
    # and continues as the run did, to the bit.
    resumed = amp_cfg(tiny_cfg_options, tmp_path / 'resumed', monkeypatch,
                      '--resume', str(tmp_path / 'epoch_1.pth'))
    if mixing:
        resumed.merge_from_dict(CUTMIX)
    resumed = Runner.from_cfg(resumed)
    resumed.train()
    assert resumed.epoch == straight.epoch == 2
    ours, theirs = resumed.model.state_dict(), straight.model.state_dict()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert torch.equal(hook_of(resumed).store.final,
                       hook_of(straight).store.final)


@pytest.mark.filterwarnings('ignore:.*GradScaler is enabled')
def test_amp_with_gpu_keeps_mmengines_float16_wrapper(
        tiny_cfg_options, tmp_path, monkeypatch):
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    train = train_script()
    monkeypatch.setattr(train, 'is_cuda_available', lambda: True)
    monkeypatch.setattr('sys.argv', [
        'train.py', CONFIG, '--amp', '--cfg-options',
        'optim_wrapper.dtype=bfloat16'
    ])
    cfg = train.merge_args(
        make_cfg(tiny_cfg_options, tmp_path), train.parse_args())
    cfg.work_dir = str(tmp_path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    train_and_check_reduced_precision(cfg, 'AmpOptimWrapper')


def test_amp_without_gpu_refuses_float16(tiny_cfg_options, tmp_path,
                                         monkeypatch):
    with pytest.raises(LSSKDConfigError,
                       match=r'optim_wrapper.dtype: .*bfloat16.* not '
                       r'float16. Leave optim_wrapper.dtype out'):
        amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, '--cfg-options',
                'optim_wrapper.dtype=float16')


def test_amp_refuses_a_cpu_without_native_bfloat16(tiny_cfg_options,
                                                   tmp_path, monkeypatch):
    """Emulated bfloat16 trains many times slower than float32: --amp,
    asked for speed, says so instead."""
    with pytest.raises(LSSKDConfigError,
                       match=r'--amp: .*no native support.* Train in '
                       r'float32 on this machine: without --amp'):
        amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, native_bf16=False)


CONFIG_AMP = ('--cfg-options', 'optim_wrapper.type=AmpOptimWrapper',
              'optim_wrapper.loss_scale=dynamic')


def test_a_configs_own_amp_optim_wrapper_means_amp(tiny_cfg_options,
                                                  tmp_path, monkeypatch):
    """mmengine's AmpOptimWrapper asserts a GPU: a config that sets it
    itself, as some mmpretrain recipes do, gets what --amp gives."""
    cfg = amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, *CONFIG_AMP,
                  flag=None)
    assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    runner = Runner.from_cfg(cfg)
    wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    assert type(wrapper) is BF16AmpOptimWrapper
    # The messages name what asked for it.
    with pytest.raises(LSSKDConfigError,
                       match=r"optim_wrapper.type='AmpOptimWrapper': without "
                       r'a GPU it trains in bfloat16, .* without '
                       r"optim_wrapper.type='AmpOptimWrapper'"):
        amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, *CONFIG_AMP,
                flag=None, native_bf16=False)


CONFIG_BF16 = ('--cfg-options', 'optim_wrapper.type=BF16AmpOptimWrapper')


def test_a_configs_own_bf16_wrapper_is_checked_like_amp(
        tiny_cfg_options, tmp_path, monkeypatch):
    """A config that names the bfloat16 wrapper itself (the study's
    configs do) trains in it where the CPU runs it natively, and is refused
    where it would be emulated, as --amp is; on a GPU it is left alone."""
    cfg = amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, *CONFIG_BF16,
                  flag=None)
    assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'
    with pytest.raises(LSSKDConfigError,
                       match=r"optim_wrapper.type='BF16AmpOptimWrapper': "
                       r'without a GPU it trains in bfloat16, .*no native '
                       r'support.* --cfg-options '
                       r'optim_wrapper.type=OptimWrapper'):
        amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, *CONFIG_BF16,
                flag=None, native_bf16=False)
    # amp_cfg loads tools/train.py anew, which imports this.
    monkeypatch.setattr('mmengine.device.is_cuda_available', lambda: True)
    cfg = amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, *CONFIG_BF16,
                  flag=None, native_bf16=False)
    assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'


@pytest.mark.parametrize('amx', [False, True])
def test_amp_warns_that_bfloat16_without_amx_may_be_slower(
        tiny_cfg_options, tmp_path, monkeypatch, amx):
    """Natively, but without AMX, a bfloat16 step was slower than float32:
    --amp still trains in it (it halves memory) and says so."""
    logged = []
    monkeypatch.setattr(
        'mmengine.logging.MMLogger.log',
        lambda self, level, message, *args, **kwargs: logged.append(
            (level, message)))
    cfg = amp_cfg(tiny_cfg_options, tmp_path, monkeypatch, amx=amx)
    assert cfg.optim_wrapper.type == 'BF16AmpOptimWrapper'
    warnings = [message for level, message in logged
                if level == logging.WARNING and 'no AMX tiles' in message]
    if amx:
        assert not warnings
    else:
        assert len(warnings) == 1
        assert 'bfloat16 halves the activation memory but may not train ' \
            'faster than float32' in warnings[0]


def test_bf16_wrapper_autocasts_and_resumes_a_float16_runs_state():
    model = torch.nn.Linear(3, 2)
    wrapper = BF16AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    with wrapper.optim_context(model):
        out = model(torch.ones(4, 3))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert model.weight.dtype == torch.float32
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    # An AmpOptimWrapper checkpoint (float16 on a GPU) carries its scale.
    fresh = BF16AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    fresh.load_state_dict(dict(state, loss_scaler={'scale': 65536.0}))
    momentum = fresh.optimizer.state_dict()['state'][0]['momentum_buffer']
    assert torch.equal(momentum,
                       state['state'][0]['momentum_buffer'])


class StrictSGD(torch.optim.SGD):
    """An optimizer that refuses keys it does not know, as some do (and as
    torch may): what the bf16 wrapper hands it must be its own state."""

    def load_state_dict(self, state_dict):
        unknown = set(state_dict) - {'state', 'param_groups'}
        if unknown:
            raise KeyError(f'unexpected keys {sorted(unknown)}')
        super().load_state_dict(state_dict)


def test_bf16_wrapper_restores_exactly_what_it_saved_or_a_float16_run_had():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    wrapper = BF16AmpOptimWrapper(
        optimizer=StrictSGD(model.parameters(), lr=0.1, momentum=0.9))
    for _ in range(2):
        with wrapper.optim_context(model):
            out = model(torch.randn(4, 3))
        wrapper.update_params(out.float().square().sum())
    state = wrapper.state_dict()
    for saved in (state, dict(state, loss_scaler={'scale': 65536.0})):
        fresh = BF16AmpOptimWrapper(
            optimizer=StrictSGD(model.parameters(), lr=0.5, momentum=0.1))
        fresh.load_state_dict(saved)
        restored = fresh.state_dict()
        assert restored['param_groups'] == state['param_groups']
        for i, entry in state['state'].items():
            assert torch.equal(restored['state'][i]['momentum_buffer'],
                               entry['momentum_buffer'])
