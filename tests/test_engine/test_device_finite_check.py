"""PastPredictionHook(finite_check='device'): a non-finite loss is kept out
of the weights and the store without a host read in the step."""
import pytest
import torch
from conftest import hook_of, make_cfg
from mmengine.runner import Runner
from test_reliability import (expect_stop_at_step_5_leaving_no_trace,
                              poison_loss_at_step)

from mmlsskd.utils import LSSKDConfigError, NonFiniteLossError

FUSED_SGD = dict(optimizer=dict(
    type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True,
    fused=True))


def device_cfg(options, work_dir, check_interval=None, **extra):
    hooks = [
        dict(type='PastPredictionHook', alpha_T=0.8, finite_check='device',
             check_interval=check_interval),
        dict(type='EpochSeedHook')
    ]
    return make_cfg(options, work_dir, custom_hooks=hooks,
                    optim_wrapper=FUSED_SGD, randomness=dict(seed=0),
                    **extra)


def test_finite_training_is_what_the_host_check_trains(
        tiny_cfg_options, tmp_path):
    host = Runner.from_cfg(make_cfg(
        tiny_cfg_options, tmp_path / 'host', optim_wrapper=FUSED_SGD,
        randomness=dict(seed=0)))
    host.train()
    device = Runner.from_cfg(device_cfg(tiny_cfg_options, tmp_path / 'dev'))
    device.train()
    for key, value in host.model.state_dict().items():
        assert torch.equal(device.model.state_dict()[key], value), key
    for key, value in hook_of(host).store.state_dict().items():
        assert torch.equal(hook_of(device).store.state_dict()[key],
                           value), key


def test_a_bad_step_is_skipped_and_named_at_the_next_read(
        tiny_cfg_options, tmp_path, monkeypatch):
    # 3 steps an epoch; step 5 is epoch 2's second; read every step.
    before = poison_loss_at_step(monkeypatch, 5, 'loss_kl', float('nan'))
    runner = before['runner'] = Runner.from_cfg(
        device_cfg(tiny_cfg_options, tmp_path, check_interval=1))
    # The optimizer skipped the step on the device; the store wrote nothing.
    expect_stop_at_step_5_leaving_no_trace(runner, before, tmp_path)


def test_steps_after_a_bad_one_train_until_the_read(
        tiny_cfg_options, tmp_path, monkeypatch):
    # Step 4 (epoch 2's first) is bad; the read comes after step 6.
    before = poison_loss_at_step(monkeypatch, 4, 'loss_hier', float('inf'))
    runner = before['runner'] = Runner.from_cfg(
        device_cfg(tiny_cfg_options, tmp_path, check_interval=3))
    with pytest.raises(NonFiniteLossError,
                       match='loss_hier became non-finite at epoch 2, '
                       'iteration 4'):
        runner.train()
    assert runner.iter == 5  # steps 5 and 6 ran (iter counts from 0)
    store = hook_of(runner).store
    # Steps 5 and 6 wrote their samples for epoch 2 (index 1); step 4's
    # samples still hold epoch 1's predictions, untouched.
    written = store.written_epoch
    assert int((written == 1).sum()) == 20 - 8
    assert int((written == 0).sum()) == 8
    changed = {k: not torch.equal(v, before['state'][k])
               for k, v in runner.model.state_dict().items()}
    assert any(changed.values())  # the good steps trained
    assert all(torch.isfinite(v).all()
               for v in runner.model.state_dict().values())
    # No checkpoint of epoch 2 was written.
    assert not (tmp_path / 'epoch_2.pth').exists()


def test_the_device_check_needs_a_fused_optimizer(tiny_cfg_options,
                                                  tmp_path):
    cfg = device_cfg(tiny_cfg_options, tmp_path)
    cfg.optim_wrapper.optimizer.fused = False
    with pytest.raises(LSSKDConfigError, match='fused=True'):
        Runner.from_cfg(cfg).train()


@pytest.mark.parametrize('kwargs,match', [
    (dict(finite_check='never'), "'step' or 'device'"),
    (dict(check_interval=0), 'positive int'),
])
def test_bad_check_settings_are_named(kwargs, match):
    from mmlsskd.engine import PastPredictionHook
    with pytest.raises(LSSKDConfigError, match=match):
        PastPredictionHook(**kwargs)


def test_resume_with_the_device_check_is_exact(tiny_cfg_options, tmp_path):
    straight = Runner.from_cfg(device_cfg(tiny_cfg_options,
                                          tmp_path / 'straight'))
    straight.train()
    Runner.from_cfg(device_cfg(tiny_cfg_options, tmp_path / 'split',
                               train_cfg=dict(max_epochs=1))).train()
    resumed = Runner.from_cfg(device_cfg(tiny_cfg_options,
                                         tmp_path / 'split', resume=True))
    resumed.train()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    for key, value in hook_of(straight).store.state_dict().items():
        assert torch.equal(hook_of(resumed).store.state_dict()[key],
                           value), key
