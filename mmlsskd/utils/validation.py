"""Every check LSSKD makes on settings, data and checkpoints, in one place.

Each failure names what is wrong and how to fix it, in one sentence each,
and is raised as early as the information exists: loss settings when the
model is built, the dataset and checkpoint files before the first step,
non-finite losses before the optimizer or the past-prediction store sees
them.
"""
import difflib
import glob
import math
import os
import os.path as osp
import re
import zipfile
from typing import Dict, Iterable, Optional, Tuple

import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS


class LSSKDConfigError(ValueError):
    """A setting that cannot work, found before training starts."""


class LSSKDCheckpointError(ValueError):
    """A checkpoint that cannot be resumed or loaded as asked."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the earlier ones are intact."""


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite; the step was not applied."""


def _message(subject: str, problem: str, fix: str) -> str:
    return f'{subject}: {problem}. {fix}'


def config_error(subject: str, problem: str, fix: str) -> LSSKDConfigError:
    """An :class:`LSSKDConfigError` worded as every other one."""
    return LSSKDConfigError(_message(subject, problem, fix))


def check_unit_interval(
        subject: str,
        value: float,
        fix: str = 'It is the weight of the past prediction in the soft '
        'target; PS-KD uses 0.8, 0 switches past predictions off.') -> None:
    """``value`` must lie in [0, 1] (e.g. ``alpha_T``)."""
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise config_error(subject, f'must lie in [0, 1], got {value!r}',
                           fix)


def check_loss_cfg(subject: str, cfg: Optional[dict],
                   optional: bool = False) -> None:
    """A loss config: a registered type, ``loss_weight >= 0``, ``tau > 0``.

    Args:
        subject (str): The config key, e.g. ``'aux_head.loss_kl'``.
        cfg (dict, optional): The loss config.
        optional (bool): Whether None (drop the term) is allowed.
    """
    if cfg is None and optional:
        return
    if not isinstance(cfg, dict) or 'type' not in cfg:
        fix = ('Give a loss config such as dict(type='
               "'CrossEntropyLoss', use_soft=True)")
        raise config_error(subject, f'expected a loss config with a type, '
                           f'got {cfg!r}', fix + (
                               ', or None to drop the term.'
                               if optional else '.'))
    name = cfg['type']
    if isinstance(name, str):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            found = MODELS.get(name)
        if found is None:
            known = _registered_losses()
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = (f'Did you mean {", ".join(repr(c) for c in close)}?'
                    if close else
                    "Use an mmpretrain loss (e.g. 'CrossEntropyLoss') or an "
                    "mmrazor one with its prefix (e.g. "
                    "'mmrazor.KLDivergence').")
            raise config_error(subject, f'unknown loss type {name!r}', hint)
    weight = cfg.get('loss_weight', 1.0)
    if not isinstance(weight, (int, float)) or weight < 0 or \
            not math.isfinite(weight):
        raise config_error(
            subject, f'loss_weight must be a finite number >= 0, got '
            f'{weight!r}', 'A negative weight would maximise the loss; '
            'use 0 or None to switch the term off.')
    if 'tau' in cfg and not (isinstance(cfg['tau'], (int, float))
                             and cfg['tau'] > 0):
        raise config_error(
            subject, f"temperature tau must be > 0, got {cfg['tau']!r}",
            'HSSAKD and LSSKD use tau=3.0.')


def _registered_losses() -> list:
    """Loss-like names: mmpretrain's bare, other scopes' with a prefix."""

    def losses(registry):
        return [
            n for n in registry.module_dict
            if any(w in n for w in ('Loss', 'KL', 'Divergence'))
        ]

    root = MODELS
    while root.parent is not None:
        root = root.parent
    names = losses(MODELS)
    for scope, registry in root.children.items():
        if registry is not MODELS:
            names += [f'{scope}.{n}' for n in losses(registry)]
    return names


def check_labels(labels: torch.Tensor, num_classes: int) -> None:
    """Labels must index the classifier's ``num_classes`` outputs (an
    out-of-range label would end a GPU run in a device-side assert of
    ``one_hot``)."""
    if not labels.numel():
        return
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise config_error(
            'gt_label', f'labels are {labels.dtype}, not class indices',
            'Give every sample its integer class index; LSSKD builds its '
            'soft targets itself (and refuses label-mixing augments).')
    low, high = torch.stack(torch.aminmax(labels)).tolist()
    if low < 0 or high >= num_classes:
        raise config_error(
            'gt_label', f'labels {low}..{high} do not fit a {num_classes}-way '
            f'classifier', 'Set the head num_classes (and '
            'data_preprocessor.num_classes) to the number of classes of the '
            'dataset.')


def check_dataset_fits(dataset, num_classes: int) -> None:
    """The training set's classes and index space suit the store.

    Raises:
        LSSKDConfigError: If the dataset names another number of classes
            than the head, or if a ``ConcatDataset`` would give different
            images the same ``sample_idx``.
    """
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if classes and len(classes) != num_classes:
        raise config_error(
            'num_classes', f'the classifier head has {num_classes} classes '
            f'but the training set {type(dataset).__name__} has '
            f'{len(classes)}', f'Set model head num_classes={len(classes)} '
            f'(and data_preprocessor.num_classes), or fix the dataset.')
    for part in _walk_datasets(dataset):
        if type(part).__name__ == 'ConcatDataset':
            raise config_error(
                'train_dataloader.dataset',
                'ConcatDataset numbers the samples of each part from 0, so '
                'the past predictions of different images would collide',
                "Use dict(type='GlobalIndexConcatDataset', datasets=[...]), "
                'which numbers them 0..N-1 across the parts.')


def check_sample_index_space(dataset) -> None:
    """Every training sample carries its own ``sample_idx`` in the
    store's ``[0, N)``: two images with one index would share a row of
    past predictions (and another row would never be written).

    It reads each sample's annotation once (``get_data_info``, no image
    decoding), before training; a dataset without ``get_data_info`` is
    checked step by step only (the range, in :meth:`PastPredictionStore.
    update`).

    Raises:
        LSSKDConfigError: Naming the first index out of range or repeated.
    """
    indexed = indexed_dataset(dataset)
    get_data_info = getattr(indexed, 'get_data_info', None)
    if get_data_info is None:
        return
    size, name = len(indexed), type(indexed).__name__
    owner = {}
    for i in range(size):
        index = get_data_info(i).get('sample_idx', i)
        if not 0 <= index < size:
            raise config_error(
                'sample_idx', f'sample {i} of {name} carries sample_idx='
                f'{index}, outside the [0, {size}) its past predictions are '
                f'stored in', 'Each sample must carry its own index in the '
                'training set (get_data_info(i)[\'sample_idx\'] == i, as '
                'mmengine\'s BaseDataset sets it).')
        if index in owner:
            raise config_error(
                'sample_idx', f'samples {owner[index]} and {i} of {name} both '
                f'carry sample_idx={index}, so their past predictions would '
                f'overwrite each other', 'Each sample must carry its own '
                'index in the training set (get_data_info(i)[\'sample_idx\'] '
                '== i, as mmengine\'s BaseDataset sets it); for '
                "concatenated parts use dict(type='GlobalIndexConcatDataset', "
                'datasets=[...]).')
        owner[index] = i


def check_steps_per_epoch(loader) -> None:
    """An epoch has at least one training step: otherwise checkpoints of
    untrained weights and an empty store would be saved as trained."""
    if len(loader):
        return
    size, batch = len(loader.dataset), loader.batch_size
    if getattr(loader, 'drop_last', False) and size:
        raise config_error(
            'train_dataloader', f'drop_last=True drops the only, incomplete '
            f'batch: {size} training images (on this rank) and '
            f'batch_size={batch} leave no step in an epoch',
            f'Set train_dataloader.batch_size to at most {size}, or '
            f'drop_last=False.')
    raise config_error(
        'train_dataloader.dataset', 'the training set yields no batch on '
        'this rank, so no epoch would train', 'Check the dataset\'s path '
        'and filters (it has no image), or train on fewer processes.')


def indexed_dataset(dataset):
    """The dataset whose indices the training samples carry as
    ``sample_idx``, i.e. the one the past-prediction store indexes.

    Wrappers that repeat samples (``RepeatDataset``, ``ClassBalancedDataset``)
    pass on the wrapped dataset's indices, so one image keeps one entry and
    the store needs only the wrapped dataset's length, not the repeated one.
    """
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and not getattr(dataset, 'renumbers_samples', False):
        return indexed_dataset(inner)
    return dataset


def sample_index_space(dataset) -> int:
    """How many distinct ``sample_idx`` the training set's samples carry."""
    return len(indexed_dataset(dataset))


def _walk_datasets(dataset) -> Iterable:
    yield dataset
    if getattr(dataset, 'renumbers_samples', False):
        return  # its sample_idx is its own index, whatever is inside
    inner = getattr(dataset, 'dataset', None)
    if inner is not None:
        yield from _walk_datasets(inner)
    for part in getattr(dataset, 'datasets', None) or ():
        yield from _walk_datasets(part)


def check_sample_indices(indices: torch.Tensor, num_samples: int) -> None:
    """Sample indices must lie in the store's ``[0, num_samples)``."""
    if indices.numel() and (int(indices.min()) < 0
                            or int(indices.max()) >= num_samples):
        raise config_error(
            'sample_idx', f'got {int(indices.min())}..{int(indices.max())}, '
            f'outside the [0, {num_samples}) of the training set the '
            f'past-prediction store was sized for',
            'Each data sample must carry its index in the training set; '
            'dataset wrappers must keep indices within their length.')


def check_store_options(dtype: str, topk, branch_views: str,
                        device='cpu') -> None:
    """The past-prediction store's storage settings."""
    subject = 'PastPredictionHook.store'
    kind = device
    if device not in ('cpu', 'pinned', 'auto'):
        try:
            kind = torch.device(device).type
        except (RuntimeError, TypeError):
            raise config_error(
                subject, f"device must be 'cpu', 'pinned', 'auto' or a torch "
                f'device such as \'cuda\', got {device!r}',
                "'auto' keeps the store on the GPU when it fits.") from None
    if kind in ('pinned', 'cuda'):
        if not torch.cuda.is_available():
            raise config_error(
                subject, f'device={device!r} needs CUDA, which this machine '
                f'does not have', "Use device='cpu', or 'auto' to put the "
                'store on the GPU where there is one.')
    if dtype not in ('float32', 'float16', 'bfloat16'):
        raise config_error(subject, f'dtype must be float32, float16 or '
                           f'bfloat16, got {dtype!r}',
                           "float16 halves the store's memory.")
    if topk is not None and not (isinstance(topk, int) and topk > 0):
        raise config_error(subject, f'topk must be a positive int or None, '
                           f'got {topk!r}',
                           'It is the number of probabilities kept per row.')
    if branch_views not in ('all', 'unrotated'):
        raise config_error(subject, f"branch_views must be 'all' or "
                           f"'unrotated', got {branch_views!r}",
                           "'unrotated' keeps one view of every branch.")


def check_finite_losses(losses: Dict[str, torch.Tensor],
                        context: str) -> None:
    """Stop before a NaN or infinite loss reaches the weights or store.

    Args:
        losses (dict[str, torch.Tensor]): The parsed loss terms.
        context (str): Where training is (step, last checkpoint).
    """
    total = losses.get('loss')
    # A sum is finite only if every term is: one operation and one
    # device-to-host read in the common case, the terms only on failure.
    if torch.is_tensor(total) and bool(torch.isfinite(total)):
        return
    names = [name for name in losses if name.startswith('loss')]
    values = torch.stack(
        [losses[name].detach().float().reshape(()) for name in names])
    if bool(torch.isfinite(values).all()):
        return
    bad = [n for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
    if len(bad) > 1 and 'loss' in bad:
        bad.remove('loss')  # the total is non-finite because a term is
    if bad:
        raise NonFiniteLossError(
            _message(
                'training stopped', f'{", ".join(bad)} became non-finite '
                f'at {context}; no weight and no past prediction was '
                f'updated with it', 'Resume from the last good checkpoint '
                'with a lower learning rate (or --amp off), or check the '
                'inputs of this step.'))


def check_square_views(view_transform, height: int, width: int) -> None:
    """Rotations by 90 degrees need square images."""
    if height != width and any(t % 2 for t in view_transform.quarter_turns):
        raise config_error(
            'view_transform', f'angles {view_transform.angles} rotate by 90 '
            f'degrees, which changes the shape of {height}x{width} images',
            "Crop or resize to a square in the train pipeline (e.g. "
            "dict(type='RandomResizedCrop', scale=224)) or use "
            'angles=(0, 180).')


# What torch.save's legacy (non-zip) format writes first: pickle protocol 2
# and torch's magic number as a 10-byte long.
_LEGACY_TORCH_HEADER = b'\x80\x02\x8a\x0a' + (
    0x1950a86a20f9469cfc6c).to_bytes(10, 'little')


_VERIFIED_FILES = set()  # (real path, size, mtime) of checked files


def is_remote(path: str) -> bool:
    """A URL or storage URI (``https://``, ``s3://``, ``open-mmlab://``...)
    that mmengine's loader fetches itself."""
    return '://' in str(path)


def _checkpoint_number(path: str) -> int:
    return int(re.search(r'_(\d+)\.pth$', path).group(1))


def latest_checkpoint(work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint ``--resume`` continues from, and why it is not the
    one ``last_checkpoint`` names, if it is not.

    mmengine trusts ``last_checkpoint`` as written; it can be empty (a
    write of it interrupted), name no file (a work directory moved or
    copied elsewhere keeps the old absolute path) or be missing while
    checkpoints are there. Then the same file name in ``work_dir``, else the
    latest ``epoch_N.pth`` (else ``iter_N.pth``) there is used.

    Args:
        work_dir (str): The run's work directory.

    Returns:
        tuple: The checkpoint (None: nothing to resume, a fresh start) and,
        when it is not what ``last_checkpoint`` names, the reason, for the
        log.

    Raises:
        LSSKDCheckpointError: If ``last_checkpoint`` exists but names no
            usable file and the work directory holds no checkpoint.
    """
    record = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(record):
        with open(record) as f:
            named = f.read().strip()
        if named and osp.isfile(named):
            return named, None
    if named:
        here = osp.join(work_dir, osp.basename(named))
        problem = f'{record} names {named}, which does not exist'
        if osp.isfile(here):
            return here, (f'{problem}; resuming from {here} (the work '
                          f'directory was moved or copied?)')
    else:
        problem = f'{record} is ' + ('empty' if named == '' else 'missing')
    for kind in ('epoch', 'iter'):
        found = glob.glob(osp.join(work_dir, f'{kind}_*.pth'))
        found = [p for p in found if re.search(r'_(\d+)\.pth$', p)]
        if found:
            latest = max(found, key=_checkpoint_number)
            return latest, (f'{problem}; resuming from the latest checkpoint '
                            f'in the work directory, {latest}')
    if named is None:
        return None, None  # nothing to resume: a fresh start
    raise LSSKDCheckpointError(
        _message('resume', f'{problem}, and {work_dir} holds no epoch_N.pth '
                 f'or iter_N.pth', 'Give the checkpoint to resume from: '
                 '--resume PATH.'))


def check_checkpoint_file(path: str, purpose: str) -> None:
    """A local checkpoint file exists and is complete: a PyTorch zip
    archive whose every member passes its CRC, or a file in torch.save's
    legacy format. URLs are left to the loader, which downloads them.

    Args:
        path (str): The file.
        purpose (str): ``'resume'``, ``'load_from'``, ``'test'`` or
            ``'export'``, for the message.
    """
    if is_remote(path):
        return
    if not osp.isfile(path):
        raise LSSKDCheckpointError(
            _message(purpose, f'checkpoint {path} does not exist',
                     'Check the path (or drop it: --resume alone picks the '
                     "work directory's latest checkpoint)."))
    stat = os.stat(path)
    identity = (osp.realpath(path), stat.st_size, stat.st_mtime_ns)
    if identity in _VERIFIED_FILES:
        return  # e.g. tools/test.py's check, then the LSSKD hook's
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        with open(path, 'rb') as f:
            if f.read(len(_LEGACY_TORCH_HEADER)) == _LEGACY_TORCH_HEADER:
                broken = None  # legacy format: no checksums to verify
            else:
                broken = str(error) or type(error).__name__
    if broken is not None:
        raise LSSKDCheckpointError(
            _message(
                purpose, f'checkpoint {path} is truncated or corrupt '
                f'({broken}); nothing was loaded or overwritten',
                'Use the previous checkpoint of the work directory (its '
                'last_checkpoint file names the last complete one).'))
    _VERIFIED_FILES.add(identity)


def check_finite_weights(state_dict: dict, path: str, purpose: str) -> None:
    """Every floating-point weight of the checkpoint is finite."""
    bad = [
        k for k, v in state_dict.items()
        if torch.is_tensor(v) and v.is_floating_point()
        and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise LSSKDCheckpointError(
            _message(
                purpose, f'checkpoint {path} has non-finite weights in '
                f'{", ".join(bad[:3])}{" ..." if len(bad) > 3 else ""}',
                'Use an earlier checkpoint of the run; a run stopped by the '
                'NaN check never saves such weights.'))


def state_dict_differences(model: torch.nn.Module,
                           state_dict: dict) -> Dict[str, list]:
    """Keys of ``state_dict`` that do not fit ``model``, by kind.

    Returns:
        dict[str, list]: ``'missing'``, ``'unexpected'`` and
        ``'other shape'`` keys, sorted; only the kinds that occur.
    """
    own = model.state_dict()
    differences = {
        'missing': sorted(set(own) - set(state_dict)),
        'unexpected': sorted(set(state_dict) - set(own)),
        'other shape': sorted(
            k for k in set(own) & set(state_dict)
            if tuple(own[k].shape) != tuple(state_dict[k].shape)),
    }
    return {kind: keys for kind, keys in differences.items() if keys}


def describe_differences(differences: Dict[str, list]) -> str:
    """``'missing a, b, c ...; other shape d'``: at most three keys a kind."""
    return '; '.join(
        f'{kind} {", ".join(keys[:3])}{" ..." if len(keys) > 3 else ""}'
        for kind, keys in differences.items())


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP-style wrapper or a test-time-augmentation
    model, as mmengine loads checkpoints into it."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def check_checkpoint_fits(state_dict: dict, model: torch.nn.Module,
                          path: str, purpose: str) -> None:
    """The checkpoint's weights are this model's (same keys and shapes;
    a ``module.`` prefix is stripped, as mmengine does)."""
    state_dict = {
        k[len('module.'):] if k.startswith('module.') else k: v
        for k, v in state_dict.items()
    }
    differences = state_dict_differences(unwrap_model(model), state_dict)
    if not differences:
        return
    training_checkpoint = any(k.startswith('architecture.')
                              for k in state_dict)
    if 'unexpected' in differences and training_checkpoint and not any(
            k.startswith('architecture.')
            for k in unwrap_model(model).state_dict()):
        fix = ('It is an LSSKD/PS-KD training checkpoint: test it with its '
               'training config, or export the plain classifier first with '
               'tools/deployment/export_student.py.')
    elif 'missing' in differences and not training_checkpoint:
        fix = ('It looks like a plain classifier checkpoint: to start from '
               'it, set model.architecture.init_cfg=dict(type='
               "'Pretrained', checkpoint=...) instead.")
    else:
        fix = ('Use a checkpoint of this model and config, or change the '
               'config back to the one it was trained with.')
    raise LSSKDCheckpointError(
        _message(
            purpose, f'checkpoint {path} is not one of this model '
            f'({describe_differences(differences)})', fix))


def checkpoint_state_dict(checkpoint: dict) -> dict:
    """The weights of a loaded checkpoint, in either form mmengine loads:
    ``{'state_dict': ..., 'meta': ...}`` as the Runner saves it, or a bare
    state dict (``torch.save(model.state_dict(), path)``)."""
    if isinstance(checkpoint, dict) and 'state_dict' in checkpoint:
        return checkpoint['state_dict']
    return checkpoint


def check_loaded_weights(state_dict: dict, model: torch.nn.Module, path: str,
                         purpose: str) -> None:
    """A loaded checkpoint's weights fit ``model`` and are finite."""
    check_checkpoint_fits(state_dict, model, path, purpose)
    check_finite_weights(state_dict, path, purpose)
