"""The few-shot wrapper: per-class counts, determinism, wrapping."""
from collections import Counter

import pytest
from conftest import NUM_CLASSES, TRAIN_PER_CLASS
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

from mmlsskd.datasets import ClassStratifiedSubset

PIPELINE = [dict(type='PackInputs')]


def cifar(root, **kwargs) -> dict:
    return dict(
        type='LocalCIFAR100',
        data_root=str(root),
        split='train',
        pipeline=PIPELINE,
        **kwargs)


@pytest.mark.parametrize('fraction, per_class', [(0.25, 1), (0.5, 2),
                                                 (0.75, 3), (1.0, 4)])
def test_keeps_the_fraction_of_every_class(tiny_cifar, fraction, per_class):
    subset = ClassStratifiedSubset(cifar(tiny_cifar), fraction=fraction)
    assert per_class == round(fraction * TRAIN_PER_CLASS)
    assert Counter(subset.get_gt_labels().tolist()) == {
        c: per_class
        for c in range(NUM_CLASSES)
    }
    assert len(subset) == per_class * NUM_CLASSES
    # Labels of the kept samples are those of the wrapped ones.
    labels = subset.dataset.get_gt_labels()
    assert [labels[subset.get_ori_index(i)]
            for i in range(len(subset))] == subset.get_gt_labels().tolist()


def test_same_seed_same_samples_other_seed_other_samples(tiny_cifar):
    def draw(seed):
        return ClassStratifiedSubset(
            cifar(tiny_cifar), fraction=0.5, seed=seed).indices

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)
    assert draw(0) == sorted(draw(0))


def test_sample_idx_numbers_the_subset(tiny_cifar):
    subset = DATASETS.build(
        dict(type='ClassStratifiedSubset', dataset=cifar(tiny_cifar),
             fraction=0.5, seed=3))
    idx = [subset[i]['data_samples'].sample_idx for i in range(len(subset))]
    # A per-sample store sized len(subset) can hold every sample.
    assert idx == list(range(len(subset)))
    ori = subset.get_ori_index(1)
    assert (subset[1]['inputs'] == subset.dataset[ori]['inputs']).all()


def test_works_inside_mmengine_dataset_wrappers(tiny_cifar):
    # mmengine's wrappers build their inner dataset in the default scope,
    # which an mmpretrain config sets.
    init_default_scope('mmpretrain')
    subset = dict(type='ClassStratifiedSubset', dataset=cifar(tiny_cifar),
                  fraction=0.5)
    repeated = DATASETS.build(
        dict(type='RepeatDataset', dataset=subset, times=3))
    assert len(repeated) == 3 * NUM_CLASSES * 2
    assert repeated[len(repeated) - 1]['data_samples'].sample_idx == \
        NUM_CLASSES * 2 - 1
    balanced = DATASETS.build(
        dict(type='ClassBalancedDataset', dataset=subset,
             oversample_thr=0.5))
    assert len(balanced) >= NUM_CLASSES * 2


def test_wraps_a_lazily_initialised_dataset(tiny_cifar):
    subset = ClassStratifiedSubset(
        cifar(tiny_cifar, lazy_init=True), fraction=0.25, lazy_init=True)
    assert len(subset) == NUM_CLASSES
    assert subset.metainfo == subset.dataset.metainfo


@pytest.mark.parametrize('fraction', [0, -0.1, 1.5, 25])
def test_rejects_fractions_outside_0_1(tiny_cifar, fraction):
    with pytest.raises(ValueError, match=r'fraction must lie in \(0, 1\]'):
        ClassStratifiedSubset(cifar(tiny_cifar), fraction=fraction)


def test_a_held_out_share_never_meets_the_training_part(tiny_cifar):
    kept = ClassStratifiedSubset(cifar(tiny_cifar), fraction=1.0, seed=3)
    train = ClassStratifiedSubset(cifar(tiny_cifar), fraction=1.0, seed=3,
                                  holdout=0.25, split='train')
    held = ClassStratifiedSubset(cifar(tiny_cifar), fraction=1.0, seed=3,
                                 holdout=0.25, split='holdout')
    # One of every class's 4 is held out; together they are the subset.
    assert Counter(held.get_gt_labels().tolist()) == {
        c: 1 for c in range(NUM_CLASSES)}
    assert Counter(train.get_gt_labels().tolist()) == {
        c: TRAIN_PER_CLASS - 1 for c in range(NUM_CLASSES)}
    assert not set(train.indices) & set(held.indices)
    assert sorted(train.indices + held.indices) == kept.indices
    # Another seed holds out other images.
    other = ClassStratifiedSubset(cifar(tiny_cifar), fraction=1.0, seed=4,
                                  holdout=0.25, split='holdout')
    assert other.indices != held.indices


def test_the_unused_split_is_every_sample_the_draw_left_out(tiny_cifar):
    kept = ClassStratifiedSubset(cifar(tiny_cifar), fraction=0.5, seed=3)
    unused = ClassStratifiedSubset(cifar(tiny_cifar), fraction=0.5, seed=3,
                                   split='unused')
    assert Counter(unused.get_gt_labels().tolist()) == {
        c: TRAIN_PER_CLASS // 2 for c in range(NUM_CLASSES)}
    assert not set(kept.indices) & set(unused.indices)
    assert sorted(kept.indices + unused.indices) == list(
        range(len(kept.dataset)))
    # A holdout splits the kept samples only; the unused ones stay out.
    with_holdout = ClassStratifiedSubset(cifar(tiny_cifar), fraction=0.5,
                                         seed=3, holdout=0.5, split='unused')
    assert with_holdout.indices == unused.indices
    assert "split='unused'" in repr(unused)


def test_nothing_is_unused_when_every_sample_is_kept(tiny_cifar):
    with pytest.raises(ValueError, match='fraction=1.0 leaves none'):
        ClassStratifiedSubset(cifar(tiny_cifar), fraction=1.0,
                              split='unused')


@pytest.mark.parametrize('kwargs', [
    dict(holdout=1.0), dict(holdout=-0.1), dict(split='val'),
    dict(split='holdout')
])
def test_bad_holdout_settings_are_explained(tiny_cifar, kwargs):
    with pytest.raises(ValueError, match='holdout must lie in'):
        ClassStratifiedSubset(cifar(tiny_cifar), fraction=0.5, **kwargs)
