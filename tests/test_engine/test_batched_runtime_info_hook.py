"""BatchedRuntimeInfoHook: the logged scalars of mmengine's hook, read from
the device once per logging window."""
import pytest
import torch
from conftest import make_cfg
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from mmlsskd.engine import BatchedRuntimeInfoHook


def train(options, work_dir, monkeypatch, runtime_info, interval=2):
    """Two epochs of 3 steps; the train scalars the hub received, and
    whether any of them arrived as a tensor (a read from the device)."""
    tensors = []
    original = MessageHub.update_scalar

    def spy(self, key, value, *args, **kwargs):
        if key.startswith('train/'):
            tensors.append(isinstance(value, torch.Tensor))
        return original(self, key, value, *args, **kwargs)

    monkeypatch.setattr(MessageHub, 'update_scalar', spy)
    extra = dict(randomness=dict(seed=0),
                 default_hooks=dict(logger=dict(interval=interval)))
    extra['default_hooks']['runtime_info'] = runtime_info
    runner = Runner.from_cfg(make_cfg(options, work_dir, **extra))
    runner.train()
    scalars = {
        key: list(buffer.data[0])
        for key, buffer in runner.message_hub.log_scalars.items()
        if key.startswith('train/') and key not in ('train/time',
                                                    'train/data_time')
    }
    log = next(work_dir.glob('*/*.log')).read_text()
    lines = [line.split('loss:')[1] for line in log.splitlines()
             if 'Epoch(train)' in line]
    return scalars, any(tensors), lines


def test_the_hub_and_the_log_get_what_mmengines_hook_gives(
        tiny_cfg_options, tmp_path, monkeypatch):
    plain, plain_tensors, plain_lines = train(
        tiny_cfg_options, tmp_path / 'plain', monkeypatch,
        dict(type='RuntimeInfoHook'))
    batched, batched_tensors, batched_lines = train(
        tiny_cfg_options, tmp_path / 'batched', monkeypatch,
        dict(type='BatchedRuntimeInfoHook'))
    assert plain_tensors and not batched_tensors
    # The shipped runtime uses the batched hook.
    assert make_cfg(tiny_cfg_options, tmp_path).default_hooks.runtime_info \
        == dict(type='BatchedRuntimeInfoHook')
    assert plain.keys() == batched.keys()
    assert {'train/loss', 'train/loss_cls', 'train/loss_hier',
            'train/acc_branch1', 'train/lr'} <= set(plain)
    for key in plain:
        assert batched[key] == pytest.approx(plain[key], rel=1e-6), key
    assert len(plain['train/loss']) == 6  # 2 epochs x 3 steps
    # Logged at step 2 of each epoch (mmengine skips the last, partial
    # window by default), with the same numbers.
    assert len(batched_lines) == len(plain_lines) == 2
    assert batched_lines == plain_lines


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError, match='positive int'):
        BatchedRuntimeInfoHook(interval=0)
