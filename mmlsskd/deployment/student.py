"""Turn an LSSKD (or PS-KD) training config and checkpoint into a plain
mmpretrain classifier: its config and its weights, nothing else."""
import copy
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import CheckpointLoader
from mmpretrain import registry as mmpretrain_registry

from ..utils.checkpoint_checks import (check_checkpoint_file,
                                       check_finite_weights,
                                       checkpoint_state_dict,
                                       describe_differences,
                                       state_dict_differences)

PREFIX = 'architecture.'
WRAPPERS = ('LSSKD', 'PSKD')
# Training-only parts, and mmlsskd types with an mmpretrain/mmengine twin.
TRAINING_DATASETS = {'ClassStratifiedSubset'}
TRAINING_HOOKS = {'PastPredictionHook', 'EpochSeedHook'}
EQUIVALENTS = {
    'LocalCIFAR100': 'CIFAR100',
    'AtomicCheckpointHook': 'CheckpointHook',
    'BatchedRuntimeInfoHook': 'RuntimeInfoHook',
}


def _type_name(cfg: dict) -> str:
    return str(cfg.get('type', '')).split('.')[-1]


def student_config(cfg: Config) -> Tuple[Config, List[str]]:
    """The plain mmpretrain config of the classifier an LSSKD config trains.

    The classifier config (``model.architecture``) becomes ``model``; the
    past-prediction and epoch-seed hooks, the branch metric, training-only
    dataset wrappers and the ``mmlsskd`` import are dropped; data, schedule
    and runtime stay. ``LocalCIFAR100`` becomes mmpretrain's ``CIFAR100``
    (the same files, checked against the official archive's checksums) and
    ``AtomicCheckpointHook`` mmengine's ``CheckpointHook``;
    ``BatchedClsDataPreprocessor`` becomes mmpretrain's
    ``ClsDataPreprocessor``, which preprocesses the same.

    Args:
        cfg (Config): The LSSKD or PS-KD config, ``--cfg-options`` applied.

    Returns:
        tuple[Config, list[str]]: The plain config and notes on what was
        changed beyond the wrapper, for the user.

    Raises:
        ValueError: If the config does not train an LSSKD or PS-KD model.
    """
    plain = copy.deepcopy(cfg.to_dict())
    model = plain.get('model', {})
    if _type_name(model) not in WRAPPERS:
        raise ValueError(
            f'{cfg.filename} trains a {model.get("type")!r} model, not '
            f'LSSKD or PS-KD: there is no student to export. Its checkpoint '
            f'already is a plain classifier checkpoint.')
    notes = []
    student = model['architecture']
    student.pop('_scope_', None)
    if 'data_preprocessor' in model:
        preprocessor = dict(model['data_preprocessor'])
        preprocessor['type'] = _type_name(preprocessor) or \
            'ClsDataPreprocessor'
        student['data_preprocessor'] = preprocessor
    plain['model'] = student
    for preprocessor in (student.get('data_preprocessor'),
                         plain.get('data_preprocessor')):
        if isinstance(preprocessor, dict) and _type_name(
                preprocessor) == 'BatchedClsDataPreprocessor':
            # The same preprocessing; ours only moves labels faster.
            preprocessor['type'] = 'ClsDataPreprocessor'
            preprocessor.pop('non_blocking', None)
    optim_wrapper = plain.get('optim_wrapper')
    if isinstance(optim_wrapper, dict) and _type_name(
            optim_wrapper) == 'BF16AmpOptimWrapper':
        optim_wrapper.update(type='AmpOptimWrapper', dtype='bfloat16')
        notes.append('optim_wrapper: BF16AmpOptimWrapper -> mmengine\'s '
                     "AmpOptimWrapper(dtype='bfloat16'), which needs a GPU.")
    for helper in ('lsskd', 'pskd'):  # variables of configs/_base_/methods
        plain.pop(helper, None)

    hooks = [
        h for h in plain.get('custom_hooks', [])
        if _type_name(h) not in TRAINING_HOOKS
    ]
    if hooks:
        plain['custom_hooks'] = hooks
    else:
        plain.pop('custom_hooks', None)
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = plain.get(key)
        if isinstance(evaluator, list):
            plain[key] = [
                e for e in evaluator if _type_name(e) != 'BranchAccuracy'
            ]
            if len(plain[key]) == 1:
                plain[key] = plain[key][0]
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = plain.get(key)
        if isinstance(loader, dict) and isinstance(loader.get('dataset'),
                                                   dict):
            loader['dataset'] = _plain_dataset(loader['dataset'], key, notes)

    for hook in (plain.get('default_hooks') or {}).values():
        if isinstance(hook, dict) and _type_name(hook) in EQUIVALENTS:
            hook['type'] = EQUIVALENTS[_type_name(hook)]
    plain.pop('custom_imports', None)
    ours = sorted(_mmlsskd_types(plain))
    if ours:
        # A backbone that only mmlsskd defines (e.g. CIFARResNet) needs its
        # module; say so rather than export a config that cannot build.
        plain['custom_imports'] = dict(
            imports=['mmlsskd'], allow_failed_imports=False)
        notes.append(
            f'{", ".join(ours)} {"is" if len(ours) == 1 else "are"} defined '
            f'by mmlsskd, so the student config keeps '
            f"custom_imports=['mmlsskd'].")
    return Config(plain), notes


def _plain_dataset(dataset: dict, loader: str, notes: List[str]) -> dict:
    while _type_name(dataset) in TRAINING_DATASETS:
        notes.append(f'{loader}: dropped the {_type_name(dataset)} wrapper '
                     f'(training-time subset).')
        dataset = dataset['dataset']
    name = _type_name(dataset)
    if name in EQUIVALENTS:
        dataset = dict(dataset, type=EQUIVALENTS[name])
        notes.append(
            f'{loader}: {name} -> {EQUIVALENTS[name]} (mmpretrain '
            f'checks the files against the official archive).')
    return dataset


def _mmlsskd_types(cfg) -> set:
    """Registered type names in ``cfg`` that only mmlsskd provides."""
    found = set()
    registries = [
        getattr(mmpretrain_registry, name) for name in ('MODELS', 'DATASETS',
                                                        'TRANSFORMS', 'HOOKS',
                                                        'METRICS')
    ]

    def visit(node):
        if isinstance(node, dict):
            name = node.get('type')
            if isinstance(name, str):
                for registry in registries:
                    with DefaultScope.overwrite_default_scope('mmpretrain'):
                        obj = registry.get(name)
                    if obj is not None:
                        if obj.__module__.startswith('mmlsskd'):
                            found.add(name)
                        break
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg)
    return found


def load_training_checkpoint(path: str) -> dict:
    """Read an LSSKD/PS-KD checkpoint (weights-only) and check it as
    strictly as training and testing do.

    Raises:
        LSSKDCheckpointError: If ``path`` does not exist, is truncated or
            corrupt (a failed CRC), or holds non-finite weights.
        ValueError: If the file is not a checkpoint with ``architecture.*``
            weights.
    """
    check_checkpoint_file(path, 'export')
    try:
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    except Exception as error:
        raise ValueError(
            f'Cannot read {path} as a PyTorch checkpoint: {error}') from error
    state = checkpoint_state_dict(checkpoint)
    if not isinstance(state, dict) or not any(
            k.startswith(PREFIX) for k in state):
        raise ValueError(
            f'{path} is not an LSSKD or PS-KD checkpoint: its state_dict has '
            f'no {PREFIX!r} weights. A plain classifier checkpoint needs no '
            f'export; load it with mmpretrain directly.')
    check_finite_weights(state, path, 'export')
    if state is checkpoint:  # a bare state dict, as torch.save writes one
        checkpoint = dict(state_dict=state)
    return checkpoint


def student_checkpoint(checkpoint: dict, source: str) -> Dict:
    """The classifier's weights alone, as an mmpretrain checkpoint.

    Args:
        checkpoint (dict): The training checkpoint.
        source (str): Its path, recorded in the meta.

    Returns:
        dict: ``state_dict`` (the ``architecture.`` weights, prefix removed)
        and a ``meta`` of plain types, loadable with weights-only loading.
    """
    state = OrderedDict((k[len(PREFIX):], v)
                        for k, v in checkpoint['state_dict'].items()
                        if k.startswith(PREFIX))
    meta = checkpoint.get('meta') or {}
    plain_meta = dict(
        mmlsskd_export=dict(
            source_checkpoint=osp.abspath(source),
            epoch=int(meta.get('epoch', -1)),
            iter=int(meta.get('iter', -1))))
    if 'dataset_meta' in meta:
        plain_meta['dataset_meta'] = meta['dataset_meta']
    return dict(state_dict=state, meta=plain_meta)


def drop_branch_only_weights(state_dict: dict, student: torch.nn.Module,
                             trained: torch.nn.Module) -> List[str]:
    """Remove from the student's ``state_dict`` the classifier weights that
    exist only because LSSKD asked the backbone for its branches' stages
    (e.g. the per-output norms of Swin, ConvNeXt or PoolFormer).

    Args:
        state_dict (dict): The student's weights (``architecture.`` prefix
            removed), changed in place.
        student (nn.Module): The classifier built from the student config.
        trained (nn.Module): The LSSKD/PS-KD model built from the training
            config.

    Returns:
        list[str]: The keys removed, sorted.
    """
    branch_only = sorted(
        set(trained.architecture.state_dict()) - set(student.state_dict()))
    for key in branch_only:
        state_dict.pop(key, None)
    return branch_only


def load_student_weights(model: torch.nn.Module, state_dict: dict,
                         checkpoint_path: str, config_path: str) -> None:
    """Load the student's weights strictly, explaining a mismatch."""
    differences = state_dict_differences(model, state_dict)
    if differences:
        raise ValueError(
            f'The checkpoint {checkpoint_path} does not fit the classifier of '
            f'{config_path} ({describe_differences(differences)}). Export '
            f'with the config the checkpoint was trained with.')
    model.load_state_dict(state_dict, strict=True)
