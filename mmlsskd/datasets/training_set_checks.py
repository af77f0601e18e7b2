"""Checks of the training set the past-prediction store indexes."""
from typing import Iterable

import torch

from ..utils.errors import config_error


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
