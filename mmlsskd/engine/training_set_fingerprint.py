"""What a past-prediction store indexes, so that a resume can tell whether
it trains on the same images."""
import hashlib

import numpy as np

from ..datasets.training_set_checks import indexed_dataset

# Records whose content enters the fingerprint, spread over the dataset.
NUM_RECORDS = 16


def _labels(dataset) -> np.ndarray:
    if hasattr(dataset, 'get_gt_labels'):
        return np.asarray(dataset.get_gt_labels(), dtype=np.int64)
    return np.asarray([
        int(dataset.get_data_info(i)['gt_label'])
        for i in range(len(dataset))
    ], dtype=np.int64)


def training_set_fingerprint(dataset) -> dict:
    """A digest of the samples the store's rows belong to.

    It covers the number of samples, every sample's label in order, and the
    image (or its path) of ``NUM_RECORDS`` records spread over the dataset:
    a store restored on another dataset of the same size, or on the same
    images in another order, gets another digest.

    Args:
        dataset: The training set (wrappers that repeat samples are looked
            through, as the store does).

    Returns:
        dict: ``sha256`` (hex digest) and ``description`` (dataset type,
        sample and class counts, for messages).
    """
    indexed = indexed_dataset(dataset)
    size = len(indexed)
    labels = _labels(indexed)
    digest = hashlib.sha256(f'{size}:'.encode())
    digest.update(labels.tobytes())
    for index in np.unique(np.linspace(0, size - 1, NUM_RECORDS).astype(int)):
        info = indexed.get_data_info(int(index)) if size else {}
        for key in ('img_path', 'img'):
            value = info.get(key)
            if isinstance(value, np.ndarray):
                digest.update(np.ascontiguousarray(value).tobytes())
            elif value is not None:
                digest.update(str(value).encode())
    description = (f'{type(indexed).__name__} of {size} samples, '
                   f'{len(np.unique(labels))} classes')
    return dict(sha256=digest.hexdigest(), description=description)
