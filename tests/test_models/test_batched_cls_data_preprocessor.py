"""BatchedClsDataPreprocessor: mmpretrain's preprocessing, labels moved as
one tensor, and no operation per image."""
import collections

import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.runner.utils import set_random_seed
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils._python_dispatch import TorchDispatchMode

import mmlsskd  # noqa: F401

NORM = dict(mean=[125.3, 123.0, 113.9], std=[63.0, 62.1, 66.7],
            num_classes=10)


def samples(n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        dict(inputs=torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8,
                                  generator=generator),
             data_samples=DataSample(metainfo=dict(sample_idx=i)).
             set_gt_label(i % 10)) for i in range(n)
    ]


def build(**kwargs):
    return MODELS.build(dict(type='BatchedClsDataPreprocessor', **NORM,
                             **kwargs))


class Count(TorchDispatchMode):

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('training', [True, False])
def test_same_batch_as_mmpretrains_preprocessor_on_pseudo_collate(training):
    ours = build()(default_collate(samples(6)), training)
    theirs = MODELS.build(dict(type='ClsDataPreprocessor', **NORM))(
        pseudo_collate(samples(6)), training)
    assert torch.equal(ours['inputs'], theirs['inputs'])
    for mine, their in zip(ours['data_samples'], theirs['data_samples']):
        assert torch.equal(mine.gt_label, their.gt_label)
        assert mine.gt_label.shape == (1, )
        assert mine.sample_idx == their.sample_idx
    # The labels are views of one tensor that was copied once.
    labels = [s.gt_label for s in ours['data_samples']]
    assert len({t.untyped_storage().data_ptr() for t in labels}) == 1
    assert torch.cat(labels).tolist() == [0, 1, 2, 3, 4, 5]


def test_no_operation_per_image():
    preprocessor = build()
    counts = []
    for n in (4, 32):
        batch = default_collate(samples(n))
        with Count() as counter:
            preprocessor(batch, True)
        counts.append(counter.ops)
    assert counts[0] == counts[1]
    # The images' cast, normalisation; the labels' gathering and split.
    assert sum(counts[0].values()) <= 8, counts[0]


def test_other_batches_take_mmpretrains_path():
    # Mixing turns labels into scores: mmpretrain's path, unchanged.
    kwargs = dict(batch_augments=dict(
        augments=[dict(type='Mixup', alpha=1.0)]))
    set_random_seed(0)
    ours = build(**kwargs)(default_collate(samples(4)), True)
    set_random_seed(0)
    theirs = MODELS.build(dict(type='ClsDataPreprocessor', **NORM,
                               **kwargs))(default_collate(samples(4)), True)
    assert torch.equal(ours['inputs'], theirs['inputs'])
    for mine, their in zip(ours['data_samples'], theirs['data_samples']):
        assert torch.equal(mine.gt_score, their.gt_score)
    # A sample with two labels (multi-label data).
    batch = samples(3)
    batch[1]['data_samples'].set_gt_label([1, 2])
    out = build()(pseudo_collate(batch), False)
    assert [s.gt_label.tolist() for s in out['data_samples']] == \
        [[0], [1, 2], [2]]
    # A list of images (pseudo_collate) is stacked as mmpretrain stacks it.
    out = build()(pseudo_collate(samples(3)), False)
    assert out['inputs'].shape == (3, 3, 8, 8)
