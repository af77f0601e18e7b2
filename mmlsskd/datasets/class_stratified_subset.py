import copy
from typing import List, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class ClassStratifiedSubset:
    """Keep the same fraction of every class of a dataset (few-shot runs).

    The LSSKD paper's few-shot setting trains on 25, 50 or 75 % of the
    training set, stratified per class. Which samples are kept depends only
    on the labels, ``fraction`` and ``seed``, so two runs with the same seed
    train on the same images.

    The subset is a dataset of its own: its samples are numbered
    ``0 .. len - 1`` and that is the ``sample_idx`` they carry, so a
    per-sample store such as LSSKD's past predictions is sized for the
    subset. It wraps any mmpretrain dataset and can itself be wrapped
    (``RepeatDataset``, ``ClassBalancedDataset``, ...).

    With ``holdout > 0`` the kept samples of every class are split once
    more, under the same seed: ``split='holdout'`` gives a held-out
    ``holdout`` share of them (at least one per class, for choosing
    settings without the test set) and ``split='train'`` the rest, so the
    two never share a sample.

    ``split='unused'`` gives the wrapped dataset's samples that the draw
    left out (needs ``fraction < 1``): images from the training
    distribution that the run never trains on, a large validation set for
    choosing settings that costs the training subset nothing.

    Args:
        dataset (BaseDataset | dict): The dataset, or its config.
        fraction (float): Share of every class to keep, in (0, 1]. Every
            class keeps ``round(fraction * n_c)`` samples and at least one.
        seed (int): Seed of the per-class draw. Defaults to 0.
        holdout (float): Share of the kept samples of every class held out,
            in [0, 1). Defaults to 0.
        split (str): ``'train'`` (the kept samples that are not held out),
            ``'holdout'`` or ``'unused'``. Defaults to ``'train'``.
        lazy_init (bool): Whether to defer the draw until first use.
            Defaults to False.
    """

    renumbers_samples = True  # sample_idx is this dataset's own index

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 fraction: float,
                 seed: int = 0,
                 holdout: float = 0.0,
                 split: str = 'train',
                 lazy_init: bool = False) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(
                f'ClassStratifiedSubset keeps a share of every class, so '
                f'fraction must lie in (0, 1], got {fraction} (use 0.25 for '
                f'25 %).')
        if not 0.0 <= holdout < 1.0 or \
                split not in ('train', 'holdout', 'unused') or \
                (split == 'holdout' and holdout == 0):
            raise ValueError(
                f"ClassStratifiedSubset: holdout must lie in [0, 1) and "
                f"split be 'train', 'holdout' (which needs holdout > 0) or "
                f"'unused', got holdout={holdout}, split={split!r}; e.g. "
                f"holdout=0.1 with split='holdout' for a validation tenth.")
        if split == 'unused' and fraction == 1.0:
            raise ValueError(
                "ClassStratifiedSubset: split='unused' is the samples the "
                'draw leaves out, and fraction=1.0 leaves none; use a '
                "fraction below 1, or split='holdout' with holdout > 0.")
        self.holdout = holdout
        self.split = split
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        self.dataset = dataset
        self.fraction = fraction
        self.seed = seed
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        """dict: The wrapped dataset's meta information."""
        # Read through: a lazily initialised dataset fills it in later.
        return copy.deepcopy(self.dataset.metainfo)

    def full_init(self) -> None:
        """Draw the kept indices, class by class."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        labels = self._labels()
        rng = np.random.default_rng(self.seed)
        kept = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            count = max(1, int(round(self.fraction * len(members))))
            drawn = rng.choice(members, size=count, replace=False)
            if self.split == 'unused':
                drawn = np.setdiff1d(members, drawn)
            elif self.holdout > 0:
                # At least one held out, and one left to train on.
                held = min(max(1, int(round(self.holdout * count))),
                           count - 1)
                drawn = drawn[:held] if self.split == 'holdout' else \
                    drawn[held:]
            kept.append(drawn)
        # Sorted, so the subset keeps the wrapped dataset's order.
        self.indices: List[int] = np.sort(np.concatenate(kept)).tolist()
        self._fully_initialized = True

    def _labels(self) -> np.ndarray:
        if hasattr(self.dataset, 'get_gt_labels'):
            return np.asarray(self.dataset.get_gt_labels())
        return np.asarray([
            int(self.dataset.get_data_info(i)['gt_label'])
            for i in range(len(self.dataset))
        ])

    def get_ori_index(self, idx: int) -> int:
        """The wrapped dataset's index of the subset's sample ``idx``."""
        self.full_init()
        return self.indices[idx]

    def get_data_info(self, idx: int) -> dict:
        """The sample's annotation, its ``sample_idx`` the subset's index."""
        info = self.dataset.get_data_info(self.get_ori_index(idx))
        info['sample_idx'] = idx
        return info

    def get_cat_ids(self, idx: int) -> List[int]:
        """Category ids of the sample (for ``ClassBalancedDataset``)."""
        return self.dataset.get_cat_ids(self.get_ori_index(idx))

    def get_gt_labels(self) -> np.ndarray:
        """Labels of every kept sample, in order."""
        self.full_init()
        return self._labels()[self.indices]

    def __getitem__(self, idx: int) -> dict:
        pipeline = getattr(self.dataset, 'pipeline', None)
        if pipeline is not None:
            return pipeline(self.get_data_info(idx))
        # A wrapper (ConcatDataset, RepeatDataset) runs its parts' own
        # pipelines; the packed sample then carries the subset's index.
        sample = self.dataset[self.get_ori_index(idx)]
        sample['data_samples'].set_metainfo(dict(sample_idx=idx))
        return sample

    def __len__(self) -> int:
        self.full_init()
        return len(self.indices)

    def __repr__(self) -> str:
        split = f', split={self.split!r}' if self.split != 'train' else ''
        if self.holdout:
            split = f', holdout={self.holdout}' + (split or ", split='train'")
        return (f'{type(self).__name__}(fraction={self.fraction}, '
                f'seed={self.seed}{split}, {len(self)} of '
                f'{len(self.dataset)} samples of '
                f'{type(self.dataset).__name__})')
