"""Bad input and faults during a real run: clear early errors, no lost
state. Each case is one of the project's validation checks."""
import errno
import hashlib
import json
import os

import pytest
import torch
from conftest import (NUM_CLASSES, TRAIN_PER_CLASS, hook_of, make_cfg,
                      resuming_runner, train_one_epoch)
from mmengine.fileio.backends import LocalBackend
from mmengine.runner import Runner, ValLoop
from mmpretrain.registry import DATASETS

from mmlsskd.datasets import LocalCIFAR100
from mmlsskd.engine.hooks.past_prediction_hook import CHECKPOINT_KEY
from mmlsskd.models import PSKD, RotationJointHead
from mmlsskd.utils import (CheckpointWriteError, LSSKDCheckpointError,
                           LSSKDConfigError, NonFiniteLossError)

NUM_TRAIN = NUM_CLASSES * TRAIN_PER_CLASS


def digest(path) -> str:
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def poison_loss_at_step(monkeypatch, step: int, term: str,
                        factor: float) -> dict:
    """Multiply ``term`` of the ``step``-th branch-head loss by ``factor``.

    Returns a dict; put the runner under ``'runner'``. At the poisoned step
    it receives copies of the weights (``'state'``) and of the store's
    tensors (``'store'``), as they were before the failing update.
    """
    original = RotationJointHead.loss
    calls, seen = [], {}

    def poisoned(head, *args, **kwargs):
        losses = original(head, *args, **kwargs)
        if not head.training:
            return losses  # the dry run before training, in eval mode
        calls.append(1)
        if len(calls) == step:
            losses[term] = losses[term] * factor
            runner = seen['runner']
            seen['state'] = {
                k: v.clone()
                for k, v in runner.model.state_dict().items()
            }
            seen['store'] = {
                k: v.clone()
                for k, v in hook_of(runner).store.state_dict().items()
            }
        return losses

    monkeypatch.setattr(RotationJointHead, 'loss', poisoned)
    return seen


def expect_stop_at_step_5_leaving_no_trace(runner, before, work_dir):
    """Train ``runner`` (its loss_kl poisoned at step 5, epoch 2): it stops
    naming the term, the step and epoch 1's checkpoint, and the weights and
    the store are what they were before that step."""
    with pytest.raises(NonFiniteLossError) as error:
        runner.train()
    message = str(error.value)
    assert 'loss_kl became non-finite at epoch 2, iteration 5' in message
    assert f'last checkpoint: {work_dir / "epoch_1.pth"}' in message
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, before['state'][key]), key
    for key, value in hook_of(runner).store.state_dict().items():
        assert torch.equal(value, before['store'][key]), key


def test_a_nan_loss_stops_before_the_weights_and_store(
        tiny_cfg_options, tmp_path, monkeypatch):
    # Step 5 is in epoch 2, after epoch_1.pth was saved.
    before = poison_loss_at_step(monkeypatch, 5, 'loss_kl', float('nan'))
    runner = before['runner'] = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path))
    expect_stop_at_step_5_leaving_no_trace(runner, before, tmp_path)


def test_the_nan_check_waits_for_the_backward(tiny_cfg_options, tmp_path,
                                             monkeypatch):
    """One device-to-host read per step for the NaN check, after the
    backward was queued, not between forward and backward."""
    events = []
    original = PSKD.check_losses_finite

    def record_check(model):
        if model._unchecked_losses is not None:
            events.append('check')
        original(model)

    monkeypatch.setattr(PSKD, 'check_losses_finite', record_check)
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.model.architecture.head.fc.weight.register_hook(
        lambda grad: events.append('backward'))
    runner.train()
    steps = len(runner.train_dataloader)
    assert events == ['backward', 'check'] * steps


@pytest.mark.parametrize('nan_step', [1, 2])
def test_a_nan_in_gradient_accumulation_reaches_no_weight(
        tiny_cfg_options, tmp_path, monkeypatch, nan_step):
    """With two accumulated steps per update the first one has no
    optimizer step: its NaN is caught before the store update instead."""
    before = poison_loss_at_step(monkeypatch, nan_step, 'loss_hier',
                                 float('inf'))
    runner = before['runner'] = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path,
                 optim_wrapper=dict(accumulative_counts=2)))
    with pytest.raises(NonFiniteLossError,
                       match=f'loss_hier became non-finite at epoch 1, '
                       f'iteration {nan_step}'):
        runner.train()
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, before['state'][key]), key
    assert torch.equal(hook_of(runner).store.written_epoch,
                       before['store']['written_epoch'])


def test_truncated_checkpoint_is_named_and_left_alone(tiny_cfg_options,
                                                      tmp_path):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    data = (first / 'epoch_1.pth').read_bytes()
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(data[:len(data) // 2])
    before = digest(broken)
    runner = resuming_runner(tiny_cfg_options, tmp_path / 'resumed', broken)
    with pytest.raises(LSSKDCheckpointError,
                       match=f'resume: checkpoint {broken} is truncated'):
        runner.train()
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'loaded',
                 load_from=str(broken)))
    with pytest.raises(LSSKDCheckpointError,
                       match='load_from: .* truncated or corrupt'):
        runner.train()
    assert digest(broken) == before
    with pytest.raises(LSSKDCheckpointError, match='does not exist'):
        resuming_runner(tiny_cfg_options, tmp_path / 'x',
                        tmp_path / 'nowhere.pth').train()


def test_checkpoint_of_another_model_is_refused(tiny_cfg_options, tmp_path):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    ckpt = torch.load(first / 'epoch_1.pth', map_location='cpu')
    # The student alone, as a plain classifier checkpoint.
    plain = {
        k[len('architecture.'):]: v
        for k, v in ckpt['state_dict'].items()
        if k.startswith('architecture.')
    }
    torch.save(dict(state_dict=plain), tmp_path / 'plain.pth')
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'loaded',
                 load_from=str(tmp_path / 'plain.pth')))
    with pytest.raises(LSSKDCheckpointError, match='architecture.init_cfg'):
        runner.train()
    # A transform set with other views: branch classifiers of other shape.
    options = tiny_cfg_options + ['model.view_transform.angles=(0,180)']
    runner = resuming_runner(options, tmp_path / 'two_views',
                             first / 'epoch_1.pth')
    with pytest.raises(LSSKDCheckpointError,
                       match='other shape aux_head.classifiers'):
        runner.train()


def test_interrupted_checkpoint_write_keeps_the_last_one(
        tiny_cfg_options, tmp_path, monkeypatch):
    put = LocalBackend.put

    def interrupted(backend, obj, filepath):
        if 'epoch_2' in str(filepath):
            with open(filepath, 'wb') as f:  # half written, then Ctrl-C
                f.write(obj[:len(obj) // 2])
            raise KeyboardInterrupt
        return put(backend, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', interrupted)
    # Keep one checkpoint: mmengine's own hook would delete epoch_1 first.
    options = tiny_cfg_options + ['default_hooks.checkpoint.max_keep_ckpts=1']
    runner = Runner.from_cfg(make_cfg(options, tmp_path))
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    monkeypatch.setattr(LocalBackend, 'put', put)

    assert not (tmp_path / 'epoch_2.pth').exists()
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_1.pth')
    saved = torch.load(tmp_path / 'epoch_1.pth', map_location='cpu')
    resumed = resuming_runner(options, tmp_path)  # --resume, no path
    resumed.train()
    assert resumed.epoch == 2 and (tmp_path / 'epoch_2.pth').is_file()
    assert saved[CHECKPOINT_KEY]['written_epoch'].tolist() == [0] * NUM_TRAIN
    # max_keep_ckpts=1 removed epoch_1 only once epoch_2 was complete.
    assert not (tmp_path / 'epoch_1.pth').exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.partial')]


def test_a_run_killed_between_checkpoint_and_validation_validates_on_resume(
        tiny_cfg_options, tmp_path, monkeypatch):
    """Epoch 2's checkpoint is written, then the run is killed in epoch 2's
    validation: the resumed run validates epoch 2 before anything else, so
    the curve misses no point. A resume after an epoch that does not
    validate validates nothing first."""
    run = ValLoop.run
    validated = []

    def recorded(loop):
        validated.append(loop.runner.epoch)
        if loop.runner.epoch == 2 and len(validated) == 2:
            raise KeyboardInterrupt  # killed with its session
        return run(loop)

    monkeypatch.setattr(ValLoop, 'run', recorded)
    options = tiny_cfg_options + ['train_cfg.max_epochs=3']
    with pytest.raises(KeyboardInterrupt):
        Runner.from_cfg(make_cfg(options, tmp_path)).train()
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_2.pth')
    assert validated == [1, 2]

    resumed = resuming_runner(options, tmp_path)
    resumed.train()
    assert validated == [1, 2, 2, 3]
    scalars = tmp_path / resumed.timestamp / 'vis_data/scalars.json'
    steps = [json.loads(line)['step'] for line in open(scalars)
             if 'accuracy/top1' in line]
    assert steps == [2, 3]

    # After epoch 1 with validation every 2 epochs: nothing to repeat.
    validated.clear()
    options = tiny_cfg_options + ['train_cfg.val_interval=2']
    resuming_runner(options, tmp_path / 'again',
                    tmp_path / 'epoch_1.pth').train()
    assert validated == [2]


def always_a_new_best(runner):
    """Make every evaluation a new best of the checkpoint hook."""
    hook = next(h for h in runner.hooks if hasattr(h, 'is_better_than'))
    for key in hook.is_better_than:
        hook.is_better_than[key] = lambda new, old: True


def test_an_interrupted_best_checkpoint_keeps_the_previous_best(
        tiny_cfg_options, tmp_path, monkeypatch):
    put = LocalBackend.put

    def interrupted(backend, obj, filepath):
        if 'best_accuracy_top1_epoch_2' in str(filepath):
            with open(filepath, 'wb') as f:  # half written, then killed
                f.write(obj[:len(obj) // 2])
            raise KeyboardInterrupt
        return put(backend, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', interrupted)
    options = tiny_cfg_options + [
        'default_hooks.checkpoint.save_best=accuracy/top1',
        'default_hooks.checkpoint.max_keep_ckpts=1'
    ]
    runner = Runner.from_cfg(make_cfg(options, tmp_path))
    always_a_new_best(runner)
    with pytest.raises(KeyboardInterrupt):
        runner.train()
    monkeypatch.setattr(LocalBackend, 'put', put)
    # mmengine's hook removes the previous best first: here it is intact,
    # and no file under a checkpoint's name is incomplete.
    best = tmp_path / 'best_accuracy_top1_epoch_1.pth'
    assert set(torch.load(best, map_location='cpu')['state_dict']) == set(
        runner.model.state_dict())
    names = [p for p in os.listdir(tmp_path) if p.endswith('.pth')]
    assert sorted(names) == ['best_accuracy_top1_epoch_1.pth',
                             'epoch_2.pth']
    for name in names:
        torch.load(tmp_path / name, map_location='cpu')

    # Uninterrupted, the new best replaces the old one once it is written.
    runner = resuming_runner(options, tmp_path,
                             train_cfg=dict(max_epochs=3))
    always_a_new_best(runner)
    runner.train()
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith('.pth')) \
        == ['best_accuracy_top1_epoch_3.pth', 'epoch_3.pth']
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.partial')]


def test_a_full_disk_stops_with_the_fix_and_leaves_the_checkpoints(
        tiny_cfg_options, tmp_path, monkeypatch):
    put = LocalBackend.put

    def full(backend, obj, filepath):
        if 'epoch_2' in str(filepath):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 3])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return put(backend, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', full)
    options = tiny_cfg_options + ['default_hooks.checkpoint.max_keep_ckpts=1']
    runner = Runner.from_cfg(make_cfg(options, tmp_path))
    with pytest.raises(CheckpointWriteError) as error:
        runner.train()
    message = str(error.value)
    assert '\n' not in message
    assert f'writing {tmp_path / "epoch_2.pth"} failed (No space left on ' \
        'device)' in message
    assert f'the last complete one is {tmp_path / "epoch_1.pth"}' in message
    assert 'Free disk space' in message and '--resume' in message
    # The partial file is gone; epoch 1 is whole and resumable.
    files = [p for p in os.listdir(tmp_path) if (tmp_path / p).is_file()]
    assert sorted(f for f in files if not f.startswith('best_')) == [
        'epoch_1.pth', 'last_checkpoint', 'resnet18_cifar100.py']
    monkeypatch.setattr(LocalBackend, 'put', put)
    resumed = resuming_runner(options, tmp_path)
    resumed.train()
    assert resumed.epoch == 2


def test_partial_files_of_a_killed_run_are_removed_at_start(
        tiny_cfg_options, tmp_path):
    tmp_path.mkdir(exist_ok=True)
    left = tmp_path / '.epoch_7.pth.partial'
    left.write_bytes(b'x' * 1000)
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.train()
    assert not left.exists()
    assert (tmp_path / 'epoch_1.pth').is_file()


@pytest.mark.parametrize('option, match', [
    ('model.loss_cls.loss_weight=-1', r'loss_cls: loss_weight must be'),
    ('model.loss_feat.loss_weight=-0.01', r'loss_feat: loss_weight must be'),
    ('model.aux_head.loss_hier.loss_weight=-2',
     r'aux_head.loss_hier: loss_weight'),
    ('model.aux_head.loss_kl.tau=0', r'aux_head.loss_kl: temperature tau'),
    ('model.aux_head.loss_kl.type=KLDivergence',
     r"unknown loss type 'KLDivergence'. Did you mean "
     r"'mmrazor.KLDivergence'"),
    ('custom_hooks.0.alpha_T=1.2',
     r'PastPredictionHook.alpha_T: must lie in \[0, 1\]'),
])
def test_bad_settings_fail_when_the_runner_is_built(tiny_cfg_options,
                                                    tmp_path, option, match):
    key, value = option.split('=')
    if key.startswith('custom_hooks'):
        cfg = make_cfg(tiny_cfg_options, tmp_path,
                       custom_hooks=[dict(type='PastPredictionHook',
                                          alpha_T=float(value))])
    else:
        cfg = make_cfg(tiny_cfg_options + [option], tmp_path)
    with pytest.raises(LSSKDConfigError, match=match):
        Runner.from_cfg(cfg)


def test_head_classes_that_disagree_with_the_dataset(tiny_cfg_options,
                                                     tmp_path):
    options = tiny_cfg_options + [
        'model.architecture.head.num_classes=7',
        'data_preprocessor.num_classes=7'
    ]
    runner = Runner.from_cfg(make_cfg(options, tmp_path))
    with pytest.raises(LSSKDConfigError,
                       match='head has 7 classes but the training set '
                       'LocalCIFAR100 has 5'):
        runner.train()
    assert runner.iter == 0


def test_non_square_images_fail_before_the_first_step(tiny_cfg_options,
                                                      tmp_path):
    cfg = make_cfg(tiny_cfg_options, tmp_path)
    cfg.train_dataloader.dataset.pipeline = [
        dict(type='RandomCrop', crop_size=(32, 24)),
        dict(type='PackInputs')
    ]
    runner = Runner.from_cfg(cfg)
    with pytest.raises(LSSKDConfigError,
                       match='changes the shape of 32x24 images'):
        runner.train()
    assert runner.iter == 0


def test_concat_dataset_is_refused_and_the_global_one_works(
        tiny_cfg_options, tmp_path):
    cfg = make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1))
    part = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type='ConcatDataset',
                                        datasets=[part, part])
    with pytest.raises(LSSKDConfigError, match='GlobalIndexConcatDataset'):
        Runner.from_cfg(cfg).train()

    cfg.train_dataloader.dataset.type = 'GlobalIndexConcatDataset'
    runner = Runner.from_cfg(cfg)
    runner.train()
    written = hook_of(runner).store.written_epoch
    # Both copies of every image have their own entry, all written.
    assert written.tolist() == [0] * (2 * NUM_TRAIN)


def test_repeat_dataset_keeps_one_entry_per_image(tiny_cfg_options,
                                                  tmp_path):
    cfg = make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1))
    cfg.train_dataloader.dataset = dict(
        type='RepeatDataset', times=3, dataset=cfg.train_dataloader.dataset)
    runner = Runner.from_cfg(cfg)
    runner.train()
    store = hook_of(runner).store
    # Sized for the 20 images, not the 60 repeated samples; all written.
    assert store.num_samples == NUM_TRAIN
    assert store.written_epoch.tolist() == [0] * NUM_TRAIN


def test_a_run_without_epoch_seed_hook_is_told_resume_is_inexact(
        tiny_cfg_options, tmp_path):
    def warned(work_dir, hooks):
        cfg = make_cfg(tiny_cfg_options, work_dir, custom_hooks=hooks,
                       train_cfg=dict(max_epochs=1))
        Runner.from_cfg(cfg).train()
        log = next(work_dir.glob('*/*.log')).read_text()
        return 'has no EpochSeedHook, so --resume will not continue ' \
            'exactly' in log

    store_only = [dict(type='PastPredictionHook', alpha_T=0.8)]
    assert warned(tmp_path / 'without', store_only)
    assert not warned(tmp_path / 'with',
                      store_only + [dict(type='EpochSeedHook')])


def subset_cfg(options, work_dir, seed, **extra):
    """The tiny config on half of every class, drawn with ``seed``: the
    same size for every seed, other images."""
    cfg = make_cfg(options, work_dir, **extra)
    cfg.train_dataloader.dataset = dict(
        type='ClassStratifiedSubset', fraction=0.5, seed=seed,
        dataset=cfg.train_dataloader.dataset)
    return cfg


def test_a_store_is_not_resumed_on_another_training_set(tiny_cfg_options,
                                                        tmp_path):
    Runner.from_cfg(subset_cfg(tiny_cfg_options, tmp_path / 'first', 0,
                               train_cfg=dict(max_epochs=1))).train()
    checkpoint = tmp_path / 'first' / 'epoch_1.pth'
    other = Runner.from_cfg(subset_cfg(
        tiny_cfg_options, tmp_path / 'other', 1, resume=True,
        load_from=str(checkpoint)))
    with pytest.raises(LSSKDCheckpointError) as error:
        other.train()
    message = str(error.value)
    assert f'past predictions in checkpoint {checkpoint} belong to another ' \
        f'training set (ClassStratifiedSubset of {NUM_TRAIN // 2} samples' \
        in message
    assert 'load_from (a fresh store)' in message
    # The same draw resumes.
    same = Runner.from_cfg(subset_cfg(
        tiny_cfg_options, tmp_path / 'same', 0, resume=True,
        load_from=str(checkpoint)))
    same.train()
    assert same.epoch == 2


@pytest.mark.parametrize('value, problem', [
    (5.0, r'final rows hold values in \[.*, 5\], outside \[0, 1\]'),
    (-1.0, r'final rows hold values in \[-1, .*\], outside \[0, 1\]'),
    (float('nan'), 'final rows hold NaN or infinite values'),
])
def test_a_store_that_holds_no_distributions_is_refused(
        tiny_cfg_options, tmp_path, value, problem):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    ckpt = torch.load(first / 'epoch_1.pth', map_location='cpu')
    ckpt[CHECKPOINT_KEY]['final'][3, 0] = value
    edited = tmp_path / 'edited.pth'
    torch.save(ckpt, edited)
    runner = resuming_runner(tiny_cfg_options, tmp_path / 'resumed', edited)
    with pytest.raises(LSSKDCheckpointError,
                       match=f'store in checkpoint {edited} is not a set of '
                       f'probability distributions \\({problem}'):
        runner.train()


def test_a_row_that_does_not_sum_to_one_is_refused(tiny_cfg_options,
                                                   tmp_path):
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    ckpt = torch.load(first / 'epoch_1.pth', map_location='cpu')
    ckpt[CHECKPOINT_KEY]['branches'][1, 0] *= 0.5
    torch.save(ckpt, tmp_path / 'edited.pth')
    runner = resuming_runner(tiny_cfg_options, tmp_path / 'resumed',
                             tmp_path / 'edited.pth')
    with pytest.raises(LSSKDCheckpointError,
                       match=r'branches rows sum to 1 \+- 0.5'):
        runner.train()


def test_a_checkpoint_from_inside_an_epoch_is_refused(tiny_cfg_options,
                                                      tmp_path):
    """The epoch loop would run the epoch again from its first batch."""
    options = tiny_cfg_options + [
        'default_hooks.checkpoint.by_epoch=False',
        'default_hooks.checkpoint.interval=1'
    ]
    Runner.from_cfg(make_cfg(options, tmp_path / 'first',
                             train_cfg=dict(max_epochs=1))).train()
    inside = tmp_path / 'first' / 'iter_2.pth'
    runner = resuming_runner(options, tmp_path / 'resumed', inside)
    with pytest.raises(LSSKDCheckpointError,
                       match=f'checkpoint {inside} was saved inside epoch 1, '
                       'after 2 of its 3 steps'):
        runner.train()


def float_labels(monkeypatch):
    """Every sample's gt_label as a float tensor (a custom pipeline's)."""
    from mmpretrain.datasets.transforms import PackInputs
    pack = PackInputs.transform

    def packed(transform, results):
        packed = pack(transform, results)
        sample = packed['data_samples']
        sample.set_field(sample.gt_label.float(), 'gt_label')
        return packed

    monkeypatch.setattr(PackInputs, 'transform', packed)


@pytest.mark.parametrize('case, match', [
    ('no neck', r'model.architecture.head: fails on what the backbone gives '
     r'\(there is no neck\), .*neck=dict\(type=\'GlobalAveragePooling\'\)'),
    # At build time now: LSSKD's dry run is one image in four views.
    ('head in_channels', r'model.architecture.head: fails on what the neck '
     r'gives, .*\(4, 32\) \(mat1 .* Set head in_channels=32 \(it is 16\)'),
    # The classifier's own (default) stage and the branches' both.
    ('three stages', r'model.architecture.backbone.out_indices: \(3,\) '
     r'\(its default\) names stage 3, but ResNet_CIFAR has num_stages=3 .*'
     r'out_indices=\(2,\), its last stage, for the classifier, and '
     r'model.out_indices=\(0, 1, 2\) for the branches'),
    ('float labels', r'gt_label: labels are torch.float32, not class '
     r'indices. Give every sample its integer class index'),
    ('infinite sampler', r'train_dataloader.sampler: InfiniteSampler never '
     r'ends an epoch.*DefaultSampler'),
    ('two hooks', r'custom_hooks: 2 PastPredictionHooks.*Keep one'),
    ('branch accuracy', r'val_evaluator: BranchAccuracy reads the auxiliary '
     r'branches.*model.evaluate_branches=True'),
])
def test_settings_that_cannot_train_fail_before_the_first_step(
        tiny_cfg_options, tmp_path, monkeypatch, case, match):
    options = list(tiny_cfg_options)
    extra = {}
    if case == 'no neck':
        extra['model.architecture.neck'] = None
    elif case == 'head in_channels':
        options.append('model.architecture.head.in_channels=16')
    elif case == 'three stages':
        options.append('model.architecture.backbone.num_stages=3')
    elif case == 'float labels':
        float_labels(monkeypatch)
    elif case == 'infinite sampler':
        options.append('train_dataloader.sampler.type=InfiniteSampler')
    elif case == 'two hooks':
        extra['custom_hooks'] = [
            dict(type='PastPredictionHook'), dict(type='EpochSeedHook'),
            dict(type='PastPredictionHook')]
    elif case == 'branch accuracy':
        extra['val_evaluator'] = [dict(type='Accuracy', topk=(1, 5)),
                                  dict(type='BranchAccuracy')]
    steps = []
    monkeypatch.setattr(
        RotationJointHead, 'loss',
        lambda *args, **kwargs: steps.append(1) or {})
    with pytest.raises(LSSKDConfigError, match=match):
        cfg = make_cfg(options, tmp_path)
        cfg.merge_from_dict(extra)
        Runner.from_cfg(cfg).train()
    assert not steps


def test_a_store_the_machine_cannot_hold_stops_before_allocating(
        tiny_cfg_options, tmp_path, monkeypatch):
    from mmlsskd.engine import PastPredictionStore
    from mmlsskd.engine import past_prediction_store
    from mmlsskd.engine.hooks import past_prediction_hook
    dense = PastPredictionStore.estimate_nbytes(NUM_TRAIN, NUM_CLASSES, 4, 4)
    monkeypatch.setattr(past_prediction_store, 'available_host_memory',
                        lambda: dense // 2)
    allocated = []
    monkeypatch.setattr(past_prediction_hook, 'PastPredictionStore',
                        type('Counting', (PastPredictionStore, ), dict(
                            __init__=lambda self, *a, **k: allocated.append(
                                1))))
    runner = Runner.from_cfg(make_cfg(tiny_cfg_options, tmp_path))
    with pytest.raises(LSSKDConfigError) as error:
        runner.train()
    message = str(error.value)
    assert message.startswith(f'PastPredictionHook.store: the store of '
                              f'{NUM_TRAIN} samples needs ')
    assert 'more than the 0.0 GiB of available host memory' in message
    setting = message.split('store=dict(')[1].split(')')[0]
    assert setting.startswith("dtype='float16'")
    bounded = PastPredictionStore.estimate_nbytes(
        NUM_TRAIN, NUM_CLASSES, 4, 4, **eval(f'dict({setting})'))
    assert bounded <= dense // 4
    assert not allocated and runner.iter == 0


def test_the_start_says_what_lsskd_adds_and_the_checkpoint_size(
        tiny_cfg_options, tmp_path):
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.train()
    log = next(tmp_path.glob('*/*.log')).read_text()
    line = next(x for x in log.splitlines() if 'LSSKD adds' in x)
    assert 'LSSKD adds 4 branches on backbone stages (0, 1, 2, 3) with ' in line
    store = hook_of(runner).store
    assert (f'a past-prediction store of {store.nbytes / 2**20:.1f} MiB '
            f'(float32, {NUM_TRAIN} samples)') in line
    expected = float(line.split('will take about ')[1].split(' MiB')[0])
    actual = (tmp_path / 'epoch_1.pth').stat().st_size / 2**20
    # Weights, momentum and store; what is left (meta, message hub, the
    # archive's per-tensor records) is a fixed fraction of a MiB.
    assert actual - 0.5 <= expected <= actual


def test_a_resume_with_another_schedule_is_told_it_keeps_the_old_one(
        tiny_cfg_options, tmp_path):
    """mmengine restores a checkpoint's schedules whole: resumed with more
    epochs, the run would silently keep the shorter schedule."""
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    runner = resuming_runner(tiny_cfg_options, tmp_path / 'longer',
                             first / 'epoch_1.pth')
    runner.train()
    log = next((tmp_path / 'longer').glob('*/*.log')).read_text()
    assert ('resume: the parameter schedules restored from '
            f'{first / "epoch_1.pth"} are not this config\'s (MultiStepLR '
            'ends at 1 in the checkpoint, at 2 in this config)') in log
    # A run of the same config stopped after epoch 1 resumes without it.
    cfg = make_cfg(tiny_cfg_options, tmp_path / 'stopped')
    cfg.custom_hooks.append(dict(type='EarlyStoppingHook',
                                 monitor='accuracy/top1',
                                 stopping_threshold=0.0))
    Runner.from_cfg(cfg).train()
    runner = resuming_runner(tiny_cfg_options, tmp_path / 'same',
                             tmp_path / 'stopped' / 'epoch_1.pth')
    runner.train()
    assert runner.epoch == 2
    log = next((tmp_path / 'same').glob('*/*.log')).read_text()
    assert 'resumed epoch: 1' in log and 'parameter schedules' not in log


@DATASETS.register_module(force=True)
class RepeatingIndexCIFAR(LocalCIFAR100):
    """Gives sample i the index i % 8: a dataset that repeats indices."""

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['sample_idx'] = idx % 8
        return info


def test_repeated_sample_indices_from_any_dataset_are_refused(
        tiny_cfg_options, tmp_path):
    cfg = make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1))
    cfg.train_dataloader.dataset.type = 'RepeatingIndexCIFAR'
    with pytest.raises(LSSKDConfigError,
                       match=r'sample_idx: samples 0 and 8 of '
                       r'RepeatingIndexCIFAR both carry sample_idx=0'):
        Runner.from_cfg(cfg).train()
    assert not list(tmp_path.glob('*.pth'))


def test_an_epoch_without_a_step_is_refused(tiny_cfg_options, tmp_path):
    cfg = make_cfg(tiny_cfg_options, tmp_path,
                   train_cfg=dict(max_epochs=2),
                   train_dataloader=dict(batch_size=32, drop_last=True))
    with pytest.raises(LSSKDConfigError,
                       match=r'drop_last=True drops the only, incomplete '
                       rf'batch: {NUM_TRAIN} training images .* and '
                       r'batch_size=32 .* at most 20, or drop_last=False'):
        Runner.from_cfg(cfg).train()
    assert not list(tmp_path.glob('*.pth'))


def test_a_bare_state_dict_loads_everywhere_mmengine_loads_it(
        tiny_cfg_options, tmp_path):
    """torch.save(model.state_dict()) is a checkpoint mmengine loads: as
    load_from, in tools/test.py (CheckpointFitHook) and for export."""
    from mmlsskd.deployment import load_training_checkpoint
    from mmlsskd.engine import CheckpointFitHook
    first = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'first',
                 train_cfg=dict(max_epochs=1)))
    first.train()
    bare = tmp_path / 'bare.pth'
    torch.save(first.model.state_dict(), bare)

    loaded = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'loaded',
                 train_cfg=dict(max_epochs=1), load_from=str(bare)))
    loaded.train()  # trains from those weights, checked as fitting
    tester = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path / 'tested', load_from=str(bare)))
    tester.register_hook(CheckpointFitHook('test'))
    metrics = tester.test()
    assert 'accuracy/top1' in metrics
    exported = load_training_checkpoint(str(bare))
    assert set(exported['state_dict']) == set(first.model.state_dict())


@pytest.mark.parametrize('wrapper', ['ConcatDataset',
                                     'GlobalIndexConcatDataset',
                                     'RepeatDataset'])
def test_class_stratified_subset_over_a_wrapped_dataset(
        tiny_cfg_options, tmp_path, wrapper):
    from mmlsskd.datasets import ClassStratifiedSubset
    cfg = make_cfg(tiny_cfg_options, tmp_path)
    part = cfg.train_dataloader.dataset
    inner = dict(type=wrapper, times=2, dataset=part) \
        if wrapper == 'RepeatDataset' else dict(type=wrapper,
                                                 datasets=[part, part])
    subset = ClassStratifiedSubset(DATASETS.build(inner), fraction=0.5)
    assert len(subset) == NUM_TRAIN  # half of each class of 2 x 20
    samples = [subset[i] for i in range(len(subset))]
    assert [s['data_samples'].sample_idx for s in samples] == list(
        range(NUM_TRAIN))
    assert [int(s['data_samples'].gt_label) for s in samples] == \
        subset.get_gt_labels().tolist()


@pytest.mark.parametrize('out_indices', [None, 'auto'])
def test_a_loss_that_cannot_take_what_the_modules_give_fails_before_training(
        tiny_cfg_options, tmp_path, out_indices):
    """A neck that changes the feature size (as HRNet's fuses its stages
    to 2048) leaves feature consistency comparing features of two sizes:
    refused before the first step, whichever stages the branches hang on,
    and trains once the term is dropped."""
    cfg = make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1))
    cfg.model.out_indices = out_indices
    if out_indices is None:  # branches on what the backbone returns
        cfg.model.architecture.backbone.out_indices = (0, 1, 2, 3)
    cfg.model.architecture.neck = dict(type='LinearNeck', in_channels=32,
                                       out_channels=16, gap_dim=2)
    cfg.model.architecture.head.in_channels = 16
    with pytest.raises(LSSKDConfigError,
                       match=r"model.loss_feat: feature consistency compares "
                       r"each shallower branch's feature \(sizes \[32, 32, "
                       r"32\]\) with the feature the classifier's neck gives "
                       r'\(size 16\).*Set model.loss_feat=None'):
        Runner.from_cfg(cfg).train()
    assert not list(tmp_path.glob('*.pth'))
    cfg.model.loss_feat = None
    Runner.from_cfg(cfg).train()
    assert (tmp_path / 'epoch_1.pth').is_file()


def test_resume_finds_the_checkpoint_last_checkpoint_fails_to_name(
        tiny_cfg_options, tmp_path):
    """An empty last_checkpoint, or one that holds the old absolute path of
    a work directory moved since: --resume continues from the work
    directory's own latest checkpoint and says so; with none, it names the
    file at fault."""
    first = train_one_epoch(tiny_cfg_options, tmp_path / 'first')
    record = first / 'last_checkpoint'
    assert record.read_text().strip() == str(first / 'epoch_1.pth')

    moved = tmp_path / 'moved'
    os.rename(first, moved)  # last_checkpoint keeps the old path
    runner = resuming_runner(tiny_cfg_options, moved)
    runner.train()
    assert runner.epoch == 2 and (moved / 'epoch_2.pth').is_file()
    logs = ''.join(p.read_text() for p in moved.glob('*/*.log'))
    assert (f'resume: {moved}/last_checkpoint names {first}/epoch_1.pth, '
            f'which does not exist; resuming from {moved}/epoch_1.pth'
            ) in logs

    (moved / 'last_checkpoint').write_text('')  # an interrupted write
    runner = resuming_runner(tiny_cfg_options, moved,
                             train_cfg=dict(max_epochs=3))
    runner.train()
    assert runner.epoch == 3
    logs = ''.join(p.read_text() for p in moved.glob('*/*.log'))
    assert (f'resume: {moved}/last_checkpoint is empty; resuming from the '
            f'latest checkpoint in the work directory, {moved}/epoch_2.pth'
            ) in logs

    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'last_checkpoint').write_text('')
    with pytest.raises(LSSKDCheckpointError,
                       match=r'resume: .*last_checkpoint is empty, and .* '
                       r'holds no epoch_N.pth or iter_N.pth. Give the '
                       r'checkpoint to resume from: --resume PATH.'):
        resuming_runner(tiny_cfg_options, empty).train()
