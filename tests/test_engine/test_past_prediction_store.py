import pytest
import torch

from mmlsskd.engine import PastPredictionStore
from mmlsskd.utils import LSSKDConfigError


def test_update_then_lookup_round_trips_in_model_order():
    store = PastPredictionStore(
        num_samples=6, num_classes=2, num_views=2, num_branches=3)
    indices = torch.tensor([4, 1])
    final = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    # (branches, B, K, C*K): value encodes branch, sample, view.
    branches = torch.zeros(3, 2, 2, 4)
    for s in range(3):
        for i in range(2):
            for k in range(2):
                branches[s, i, k] = 100 * s + 10 * i + k
    store.update(indices, final, branches, epoch=3)

    past = store.lookup(torch.tensor([1, 4, 0]))
    assert torch.equal(past.final[:2], final.flip(0))
    assert torch.equal(past.final[2], torch.zeros(2))
    assert past.written.tolist() == [True, True, False]
    # View-major rows: row k * B + i.
    assert past.branches.shape == (3, 6, 4)
    assert past.branches[2, :, 0].tolist() == [210, 200, 0, 211, 201, 0]
    assert store.written_epoch.tolist() == [-1, 3, -1, -1, 3, -1]


def test_out_of_range_indices_are_rejected():
    store = PastPredictionStore(4, 2, 2, 2)
    with pytest.raises(LSSKDConfigError, match=r'outside the \[0, 4\)'):
        store.lookup(torch.tensor([4]))


def test_state_dict_round_trip_and_mismatch():
    store = PastPredictionStore(4, 2, 2, 2)
    store.update(
        torch.tensor([2]), torch.tensor([[0.3, 0.7]]), torch.ones(2, 1, 2, 4),
        epoch=0)
    other = PastPredictionStore(4, 2, 2, 2)
    other.load_state_dict(store.state_dict())
    for key, value in store.state_dict().items():
        assert torch.equal(other.state_dict()[key], value)
    with pytest.raises(ValueError, match='samples=5'):
        PastPredictionStore(5, 2, 2, 2).load_state_dict(store.state_dict())
    with pytest.raises(ValueError, match='classes=3'):
        PastPredictionStore(4, 3, 2, 2).load_state_dict(store.state_dict())


def test_a_sample_padded_twice_into_a_batch_keeps_a_valid_entry():
    # DistributedSampler pads an epoch with repeats: the same sample can
    # arrive twice in one gathered step, with two valid predictions.
    store = PastPredictionStore(3, 2, 1, 1)
    final = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    branches = torch.rand(1, 3, 1, 2)
    store.update(torch.tensor([2, 0, 2]), final, branches, epoch=0)
    assert store.final[2].tolist() in (final[0].tolist(), final[2].tolist())
    assert torch.equal(store.final[0], final[1])
    assert store.written_epoch.tolist() == [0, -1, 0]
