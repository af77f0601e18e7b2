"""Disk for the kept checkpoints is checked before the first step: a run
whose checkpoints will not fit is refused with the numbers and the fixes,
one that fills most of the free space is warned; the estimate is what a
written checkpoint weighs. The free space is faked."""
import collections
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import make_cfg
from mmengine.runner import Runner

from mmlsskd.engine import PastPredictionHook
from mmlsskd.engine import checkpoint_space
from mmlsskd.utils import LSSKDConfigError

Usage = collections.namedtuple('Usage', 'total used free')
SIZE = 10**6  # the faked checkpoint size


def fake_disk(monkeypatch, free: int) -> None:
    monkeypatch.setattr(checkpoint_space.shutil, 'disk_usage',
                        lambda path: Usage(10 * free, 9 * free, free))
    monkeypatch.setattr(checkpoint_space, 'estimate_checkpoint_bytes',
                        lambda runner, store_bytes: SIZE)


def warnings_of(runner) -> str:
    return '\n'.join(
        path.read_text() for path in Path(runner.log_dir).glob('*.log'))


def test_the_estimate_is_what_a_written_checkpoint_weighs(tiny_cfg_options,
                                                          tmp_path):
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.train()
    store = next(h for h in runner.hooks
                 if isinstance(h, PastPredictionHook)).store
    estimate = checkpoint_space.estimate_checkpoint_bytes(
        runner, store.nbytes)
    written = os.path.getsize(tmp_path / 'epoch_1.pth')
    # Weights, SGD momentum and the store, plus a megabyte for the rest
    # (meta, message hub, schedulers), which the tiny run barely uses.
    assert written < estimate < written + checkpoint_space.OVERHEAD_BYTES
    assert estimate - checkpoint_space.OVERHEAD_BYTES > 0.9 * written


def test_kept_checkpoints_that_do_not_fit_are_refused_before_training(
        tiny_cfg_options, tmp_path, monkeypatch):
    # One epoch, max_keep_ckpts=3 and save_best: the checkpoint, one more
    # while it is written, and the best: 3 MB.
    fake_disk(monkeypatch, free=int(2.9 * SIZE))
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    with pytest.raises(
            LSSKDConfigError,
            match=r'checkpoint: the run keeps 1 of its 1 checkpoint\(s\) '
            r'\(max_keep_ckpts=3\), plus one while a new one replaces the '
            r'oldest, plus the best one, each about 0.00 GB .*: 0.00 GB, and '
            rf'{tmp_path} has 0.00 GB free. Keep fewer with default_hooks.'
            r'checkpoint.max_keep_ckpts .*PastPredictionHook store=dict\('
            r"dtype='float16'\) halves it, topk=k bounds it\), or free disk "
            r'space.'):
        runner.train()
    assert runner.iter == 0
    assert not list(tmp_path.glob('*.pth'))


def test_keeping_every_checkpoint_is_counted_in_full(tiny_cfg_options,
                                                     tmp_path, monkeypatch):
    """mmpretrain's default: every checkpoint kept. 200 epochs need 200."""
    fake_disk(monkeypatch, free=150 * SIZE)
    cfg = make_cfg(tiny_cfg_options, tmp_path,
                   train_cfg=dict(max_epochs=200))
    cfg.default_hooks.checkpoint.update(max_keep_ckpts=-1, save_best=None)
    with pytest.raises(LSSKDConfigError,
                       match=r'keeps all 200 checkpoint\(s\) it writes '
                       r'\(max_keep_ckpts=-1\).*max_keep_ckpts \(e.g. 149\)'):
        Runner.from_cfg(cfg).train()


def test_checkpoints_that_fill_most_of_the_disk_are_warned(
        tiny_cfg_options, tmp_path, monkeypatch):
    fake_disk(monkeypatch, free=int(3.3 * SIZE))  # 3 MB of 3.3: 91 %
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.train()
    assert (tmp_path / 'epoch_1.pth').is_file()
    assert 'they would fill 91 % of it' in warnings_of(runner)


def test_plenty_of_disk_says_nothing(tiny_cfg_options, tmp_path,
                                     monkeypatch):
    fake_disk(monkeypatch, free=100 * SIZE)
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.train()
    assert 'they would fill' not in warnings_of(runner)


def hook(interval=1, by_epoch=True, save_last=True, max_keep_ckpts=-1):
    return SimpleNamespace(interval=interval, by_epoch=by_epoch,
                           save_last=save_last,
                           max_keep_ckpts=max_keep_ckpts)


@pytest.mark.parametrize('epoch, max_epochs, interval, save_last, saves', [
    (0, 240, 1, True, 240),
    (0, 25, 10, True, 3),  # epochs 10, 20 and the last
    (0, 25, 10, False, 2),
    (20, 25, 10, True, 1),  # resumed after epoch 20: the last only
    (0, 30, 10, True, 3),  # the last is epoch 30's own
    (5, 5, 1, True, 0),  # nothing left to train
])
def test_the_checkpoints_a_run_writes_from_where_it_is(
        epoch, max_epochs, interval, save_last, saves):
    runner = SimpleNamespace(epoch=epoch, max_epochs=max_epochs)
    assert checkpoint_space.remaining_saves(
        runner, hook(interval, save_last=save_last)) == saves


def test_a_resumed_runs_checkpoints_are_space_it_gets_back(tmp_path,
                                                         monkeypatch):
    """Resumed with max_keep_ckpts=1, the one checkpoint there is deleted
    once the next is written: the run needs one more, not two."""
    (tmp_path / 'epoch_3.pth').write_bytes(b'0' * SIZE)
    monkeypatch.setattr(checkpoint_space, 'estimate_checkpoint_bytes',
                        lambda runner, store_bytes: SIZE)
    monkeypatch.setattr(checkpoint_space.shutil, 'disk_usage',
                        lambda path: Usage(0, 0, int(1.1 * SIZE)))
    checkpoint_hook = checkpoint_space.CheckpointHook(max_keep_ckpts=1)
    runner = SimpleNamespace(epoch=3, max_epochs=10, work_dir=str(tmp_path),
                             hooks=[checkpoint_hook])
    # 1 MB of 1.1: no refusal, a warning.
    assert 'fill 91 %' in checkpoint_space.check_checkpoint_space(runner, 0)
