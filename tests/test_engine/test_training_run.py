"""Real mmengine Runner training of the shipped config on tiny data."""
import os

import pytest
import torch
from conftest import (NUM_CLASSES, TRAIN_PER_CLASS, hook_of, make_cfg,
                      resuming_runner, train_one_epoch)
from mmengine.runner import Runner

from mmlsskd.engine import PastPredictionStore
from mmlsskd.engine.hooks.past_prediction_hook import CHECKPOINT_KEY
from mmlsskd.utils import LSSKDConfigError

NUM_TRAIN = NUM_CLASSES * TRAIN_PER_CLASS


@pytest.fixture
def lookups(monkeypatch):
    """Record every batch lookup: (alpha, all written, store snapshot)."""
    records = []
    original = PastPredictionStore.lookup

    def spy(store, indices, device=None):
        past = original(store, indices, device)
        records.append((bool(past.written.all()), store.final.clone(),
                        store.branches.clone()))
        return past

    monkeypatch.setattr(PastPredictionStore, 'lookup', spy)
    return records


def test_two_epochs_fill_use_and_checkpoint_the_store(
        tiny_cfg_options, tmp_path, lookups):
    runner = Runner.from_cfg(make_cfg(tiny_cfg_options, tmp_path))
    runner.train()

    iters_per_epoch = len(runner.train_dataloader)
    assert len(lookups) == 2 * iters_per_epoch
    # Epoch 1 has no past predictions; every lookup of epoch 2 finds one.
    assert not any(written for written, _, _ in lookups[:iters_per_epoch])
    assert all(written for written, _, _ in lookups[iters_per_epoch:])
    # The last of two epochs uses alpha_T (PS-KD: alpha_T * (t + 1) / T).
    assert runner.model.alpha == pytest.approx(0.8)

    scalars = runner.message_hub.log_scalars
    for key in ('loss', 'loss_cls', 'loss_hier', 'loss_kl', 'loss_feat'):
        values = scalars[f'train/{key}'].data[0]
        assert len(values) == 2 * iters_per_epoch
        assert all(map(lambda v: v == v and abs(v) < 1e6, values)), key

    ckpt1 = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')
    ckpt2 = torch.load(tmp_path / 'epoch_2.pth', map_location='cpu')
    store1, store2 = ckpt1[CHECKPOINT_KEY], ckpt2[CHECKPOINT_KEY]
    # Every sample written in epoch 1 (index 0), then again in epoch 2.
    assert store1['written_epoch'].tolist() == [0] * NUM_TRAIN
    assert store2['written_epoch'].tolist() == [1] * NUM_TRAIN
    assert torch.allclose(store1['final'].sum(1), torch.ones(NUM_TRAIN))
    assert store1['branches'].shape == (4, NUM_TRAIN, 4, NUM_CLASSES * 4)
    # The store is not model state: the student keys stay plain.
    assert not any('store' in k or 'past' in k for k in ckpt2['state_dict'])
    assert torch.equal(hook_of(runner).store.final, store2['final'])


def test_resume_restores_the_same_store(tiny_cfg_options, tmp_path, lookups):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    saved = torch.load(first / 'epoch_1.pth', map_location='cpu')
    saved = saved[CHECKPOINT_KEY]
    lookups.clear()

    resumed = resuming_runner(tiny_cfg_options, tmp_path / 'resumed',
                              first / 'epoch_1.pth')
    resumed.train()
    assert resumed.epoch == 2
    # Only epoch 2 ran, and its first lookup saw exactly the saved store.
    assert len(lookups) == len(resumed.train_dataloader)
    written, final, branches = lookups[0]
    assert written
    assert torch.equal(final, saved['final'])
    assert torch.equal(branches, saved['branches'])


def test_load_from_starts_an_empty_store(tiny_cfg_options, tmp_path, lookups):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    lookups.clear()
    runner = Runner.from_cfg(
        make_cfg(
            tiny_cfg_options,
            tmp_path / 'finetune',
            train_cfg=dict(max_epochs=1),
            load_from=str(first / 'epoch_1.pth')))
    runner.train()
    assert not any(written for written, _, _ in lookups)


def test_resume_with_a_store_for_other_data_fails_clearly(
        tiny_cfg_options, tmp_path):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    ckpt = torch.load(first / 'epoch_1.pth', map_location='cpu')
    for key in ('final', 'branches', 'written_epoch'):
        value = ckpt[CHECKPOINT_KEY][key]
        dim = 1 if key == 'branches' else 0
        ckpt[CHECKPOINT_KEY][key] = value.narrow(dim, 0, 3)
    torch.save(ckpt, tmp_path / 'small.pth')
    runner = resuming_runner(tiny_cfg_options, tmp_path / 'resumed',
                             tmp_path / 'small.pth')
    with pytest.raises(ValueError, match='does not fit this run'):
        runner.train()
    # The checkpoint being resumed is left as it was.
    saved = torch.load(tmp_path / 'small.pth', map_location='cpu')
    assert saved[CHECKPOINT_KEY]['final'].shape[0] == 3


# CutMix on half the batches, as the COC configs mix them, configured as
# mmpretrain's recipes do: in the classifier's train_cfg.
CUTMIX = dict(architecture=dict(train_cfg=dict(
    augments=[dict(type='CutMix', alpha=1.0)], probs=[0.5])))


@pytest.mark.parametrize('mixing', [False, True])
def test_resume_continues_exactly_as_the_uninterrupted_run(
        tiny_cfg_options, tmp_path, mixing):
    # Deterministic settings: one thread (conftest), no data workers. The
    # config's seed is None, as in mmpretrain's runtime: each run draws
    # its own, and the resumed run must take the checkpoint's.
    # EpochSeedHook (in the shipped config) reseeds every epoch. On a GPU
    # the promise holds with deterministic kernels (README, "Resume").
    # With mixing, the draws of CutMix (numpy's and torch's generators)
    # must continue as they would have too.
    deterministic = torch.cuda.is_available()
    if deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    model = dict(model=CUTMIX) if mixing else {}
    split = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'split',
                 train_cfg=dict(max_epochs=1),
                 randomness=dict(seed=None, deterministic=deterministic),
                 **model))
    split.train()
    straight = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'straight',
                 randomness=dict(seed=split.seed,
                                 deterministic=deterministic), **model))
    mixed = []
    if mixing:
        recorder = straight.model.data_preprocessor.batch_augments
        pop = recorder.pop_mixing

        def spy(batch_size):
            matrix = pop(batch_size)
            mixed.append(not torch.equal(matrix, torch.eye(batch_size)))
            return matrix

        recorder.pop_mixing = spy
    straight.train()
    if mixing:  # some batches were mixed, some not
        assert any(mixed) and not all(mixed), mixed
    resumed = resuming_runner(
        tiny_cfg_options, tmp_path / 'split',
        randomness=dict(seed=None, deterministic=deterministic), **model)
    resumed.train()

    assert resumed.epoch == straight.epoch == 2
    ours, theirs = resumed.model.state_dict(), straight.model.state_dict()
    assert ours.keys() == theirs.keys()
    for key in ours:  # bit-identical, not merely close
        assert torch.equal(ours[key], theirs[key]), key
    for name in ('final', 'branches', 'written_epoch'):
        assert torch.equal(
            getattr(hook_of(resumed).store, name),
            getattr(hook_of(straight).store, name)), name


def test_a_bounded_store_trains_checkpoints_and_resumes(
        tiny_cfg_options, tmp_path):
    hooks = [
        dict(type='PastPredictionHook', alpha_T=0.8,
             store=dict(dtype='float16', topk=4, branch_views='unrotated')),
        dict(type='EpochSeedHook')
    ]
    Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, custom_hooks=hooks,
                 train_cfg=dict(max_epochs=1))).train()
    saved = torch.load(tmp_path / 'epoch_1.pth',
                       map_location='cpu')[CHECKPOINT_KEY]
    assert saved['final_values'].shape == (NUM_TRAIN, 4)
    assert saved['final_values'].dtype == torch.float16
    # Four branches, one (unrotated) view, top 4 of 5 * 4 joint labels.
    assert saved['branches_indices'].shape == (4, NUM_TRAIN, 1, 4)
    assert 'final' not in saved

    resumed = resuming_runner(tiny_cfg_options, tmp_path, custom_hooks=hooks)
    resumed.train()
    assert resumed.epoch == 2
    assert hook_of(resumed).store.written_epoch.tolist() == [1] * NUM_TRAIN


def test_unknown_store_options_fail_at_build(tiny_cfg_options, tmp_path):
    hooks = [dict(type='PastPredictionHook', store=dict(top_k=4))]
    with pytest.raises(LSSKDConfigError, match=r"unknown keys \['top_k'\]"):
        Runner.from_cfg(
            make_cfg(tiny_cfg_options, tmp_path, custom_hooks=hooks))
