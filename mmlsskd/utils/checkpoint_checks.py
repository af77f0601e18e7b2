"""Checks of checkpoint files and of the weights loaded from them."""
import glob
import os
import os.path as osp
import re
import zipfile
from typing import Dict, Optional, Tuple

import torch

from .errors import LSSKDCheckpointError, refusal_message


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
        refusal_message('resume', f'{problem}, and {work_dir} holds no epoch_N.pth '
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
            refusal_message(purpose, f'checkpoint {path} does not exist',
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
            refusal_message(
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
            refusal_message(
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
        refusal_message(
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


def check_ends_an_epoch(meta: dict, steps_per_epoch: int, path: str) -> None:
    """mmengine's epoch loop resumes at the start of the saved epoch: a
    checkpoint from inside an epoch would repeat its first steps with other
    weights and a half-updated store.

    Args:
        meta (dict): The checkpoint's ``meta`` (``epoch``, ``iter``).
        steps_per_epoch (int): Steps in an epoch of this run.
        path (str): The checkpoint, for the message.

    Raises:
        LSSKDCheckpointError: If it was saved inside an epoch.
    """
    steps = steps_per_epoch
    epoch, iteration = meta.get('epoch'), meta.get('iter')
    if epoch is None or iteration is None or not steps or \
            iteration == epoch * steps:
        return
    raise LSSKDCheckpointError(
        f'resume: checkpoint {path} was saved inside epoch {epoch + 1}, '
        f'after {iteration - epoch * steps} of its {steps} steps, and the '
        f'epoch loop would run that epoch again from its first batch, so '
        f'the run would not continue as it would have. Resume from a '
        f'checkpoint written at the end of an epoch (epoch_N.pth, by '
        f'default_hooks.checkpoint with by_epoch=True).')


def schedule_changes(saved, current) -> list:
    """How a checkpoint's parameter schedules differ from a config's.

    mmengine restores the checkpoint's schedules whole (their end and
    milestones), so a resume with another ``max_epochs`` or schedule
    silently keeps the old one.

    Args:
        saved: The checkpoint's ``param_schedulers`` (state dicts).
        current: The run's parameter schedulers.

    Returns:
        list[str]: One phrase per schedule whose end differs.
    """
    if not isinstance(saved, list) or not isinstance(current, list):
        return []
    return [
        f'{type(now).__name__} ends at {old.get("end")} in the '
        f'checkpoint, at {now.end} in this config'
        for now, old in zip(current, saved)
        if isinstance(old, dict) and 'end' in old and hasattr(now, 'end')
        and old['end'] != now.end
    ]
