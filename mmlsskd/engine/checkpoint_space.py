"""Disk for the checkpoints a run keeps, checked before its first step.

Every LSSKD/PS-KD checkpoint holds the past-prediction store beside the
weights and the optimizer state (1.2 GB for CIFAR-100 with four branches
in float32), and mmpretrain's recipes keep every checkpoint: a run that
cannot keep them fails while writing one, hours in. mmengine checks no
disk space, so the estimate is made here, from what the run will write.
"""
import math
import os
import shutil
from typing import Optional

import torch
from mmengine.hooks import CheckpointHook

from ..utils.errors import config_error

# Optimizer state tensors per parameter tensor, for the optimizers whose
# state is known; others count as two (Adam's), the most a common one has.
OPTIMIZER_STATES = dict(SGD=1, Adam=2, AdamW=2, Adamax=2, NAdam=2, RAdam=2,
                        Lamb=2, LAMB=2, Lion=1, Adagrad=1, RMSprop=1)
# Above this share of the free space the run is told it fills most of it.
WARN_SHARE = 0.8
# The checkpoint's meta, message hub and scheduler states.
OVERHEAD_BYTES = 2**20


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors
               if torch.is_tensor(t))


def optimizer_state_bytes(optim_wrapper) -> int:
    """The optimizer state a checkpoint will hold, before any step has
    made it: state tensors per trainable parameter times its bytes."""
    optimizer = getattr(optim_wrapper, 'optimizer', None)
    if optimizer is None:  # OptimWrapperDict: one per module
        return sum(optimizer_state_bytes(w)
                   for w in getattr(optim_wrapper, 'values', dict)())
    name = type(optimizer).__name__
    states = OPTIMIZER_STATES.get(name, 2)
    if name == 'SGD':
        states = int(any(g.get('momentum', 0) for g in optimizer.param_groups))
    params = [p for g in optimizer.param_groups for p in g['params']
              if p.requires_grad]
    return states * tensor_bytes(params)


def checkpoint_bytes(model, optim_wrapper, store_bytes: int,
                     weight_copies: int = 0) -> int:
    """Bytes of one checkpoint: weights and buffers (and ``weight_copies``
    more of them, e.g. an EMA model), optimizer state, the store at its
    dtype and bounds, and the rest of the checkpoint."""
    weights = tensor_bytes(model.state_dict().values())
    return (weights * (1 + weight_copies) + store_bytes + OVERHEAD_BYTES +
            optimizer_state_bytes(optim_wrapper))


def estimate_checkpoint_bytes(runner, store_bytes: int) -> int:
    """Bytes of one checkpoint of the run, with an EMA copy of the weights
    where an EMA hook keeps one."""
    return checkpoint_bytes(
        runner.model, runner.optim_wrapper, store_bytes,
        weight_copies=sum('EMA' in type(h).__name__ for h in runner.hooks))


def checkpoints_at_once(keep: int, saves: int) -> int:
    """Checkpoints on disk at once, the best one aside: the ``keep`` last
    (every one written when ``keep`` is not positive) and, while a write
    replaces the oldest, one more (``AtomicCheckpointHook`` writes before
    it deletes)."""
    return min(keep, saves) + 1 if keep > 0 else saves


def remaining_saves(runner, hook: CheckpointHook) -> int:
    """How many checkpoints the hook writes from here to the end."""
    if hook.interval <= 0:
        return int(hook.save_last)
    if hook.by_epoch:
        done, total = runner.epoch, runner.max_epochs
    else:
        done, total = runner.iter, runner.max_iters
    saves = total // hook.interval - done // hook.interval
    if hook.save_last and total % hook.interval:
        saves += 1
    return saves


def existing_checkpoint_bytes(folder: str) -> int:
    """Bytes of the epoch and iteration checkpoints already in ``folder``
    (a resumed run's), which rotation deletes as new ones are written."""
    if not os.path.isdir(folder):
        return 0
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for name in os.listdir(folder)
        if name.startswith(('epoch_', 'iter_')) and name.endswith('.pth'))


def free_bytes(folder: str) -> int:
    """Free bytes of the file system ``folder`` is (or will be) on."""
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return shutil.disk_usage(folder).free


def checkpoint_folder(runner, hook: CheckpointHook) -> str:
    """Where the hook writes, as mmengine's ``CheckpointHook`` resolves it
    in its own ``before_train``."""
    out_dir = getattr(hook, 'out_dir', None)
    if out_dir is None or out_dir == runner.work_dir:
        return runner.work_dir
    return os.path.join(out_dir, os.path.basename(runner.work_dir))


def gigabytes(size: int) -> str:
    return f'{size / 1e9:.2f} GB'


def check_checkpoint_space(runner, store_bytes: int) -> Optional[str]:
    """Refuse a run whose kept checkpoints will not fit the free space of
    their file system; a warning (returned) when they use most of it.

    The run needs its kept checkpoints (``max_keep_ckpts`` of them, or
    every one it writes), one more while a write replaces the oldest
    (``AtomicCheckpointHook`` writes before it deletes) and the best one
    if ``save_best`` keeps it; the checkpoints a resumed run already has
    are rotated out, so they count as space it will get back.

    Raises:
        LSSKDConfigError: Naming the checkpoints, their size, the free
            space and the fixes.
    """
    hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)),
                None)
    saves = remaining_saves(runner, hook) if hook is not None else 0
    if not saves:
        return None
    size = estimate_checkpoint_bytes(runner, store_bytes)
    folder = checkpoint_folder(runner, hook)
    keep = hook.max_keep_ckpts
    needed = checkpoints_at_once(keep, saves) * size
    if keep > 0:
        needed = max(size, needed - existing_checkpoint_bytes(folder))
        what = f'keeps {min(keep, saves)} of its {saves} checkpoint(s) ' \
            f'(max_keep_ckpts={keep}), plus one while a new one replaces ' \
            f'the oldest'
    else:
        what = f'keeps all {saves} checkpoint(s) it writes ' \
            f'(max_keep_ckpts={keep})'
    if hook.save_best:
        needed += size
        what += ', plus the best one'
    free = free_bytes(folder)
    numbers = (f'the run {what}, each about {gigabytes(size)} (the '
               f'past-prediction store {gigabytes(store_bytes)} of it): '
               f'{gigabytes(needed)}, and {folder} has {gigabytes(free)} '
               f'free')
    fix = ('Keep fewer with default_hooks.checkpoint.max_keep_ckpts (e.g. '
           f'{max(1, math.floor(free / size) - 1)}) or a larger interval, '
           "shrink the store in each (PastPredictionHook store=dict(dtype="
           "'float16') halves it, topk=k bounds it), or free disk space.")
    if needed > free:
        raise config_error('checkpoint', numbers, fix)
    if needed > WARN_SHARE * free:
        return (f'checkpoint: {numbers}: they would fill '
                f'{100 * needed / free:.0f} % of it. {fix}')
    return None
