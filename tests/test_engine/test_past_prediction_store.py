import pytest
import torch

from mmlsskd.engine import PastPredictionStore
from mmlsskd.engine.prediction_rows import TopKRows
from mmlsskd.utils import LSSKDCheckpointError, LSSKDConfigError


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
        torch.tensor([2]), torch.tensor([[0.3, 0.7]]),
        torch.full((2, 1, 2, 4), 0.25), epoch=0)
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


def test_topk_rows_keep_the_largest_and_spread_the_rest():
    rows = TopKRows((2, 4), k=2, dtype=torch.float32)
    rows.write(slice(None), torch.tensor([[0.1, 0.5, 0.1, 0.3],
                                          [0.6, 0.05, 0.15, 0.2]]))
    # Kept: 0.5, 0.3 and 0.6, 0.2; the rest of the mass shared by the
    # other two entries.
    assert torch.allclose(
        rows.read(slice(None)),
        torch.tensor([[0.1, 0.5, 0.1, 0.3], [0.6, 0.1, 0.1, 0.2]]))
    assert rows.indices.dtype == torch.int16


@pytest.mark.parametrize('options', [
    dict(dtype='float16'),
    dict(dtype='bfloat16', topk=3),
    dict(topk=4),
    dict(dtype='float16', topk=3, branch_views='unrotated'),
])
def test_bounded_stores_round_trip_and_shrink(options):
    torch.manual_seed(0)
    dense = PastPredictionStore(6, 8, 2, 2)
    store = PastPredictionStore(6, 8, 2, 2, **options)
    final = torch.softmax(torch.randn(4, 8), 1)
    branches = torch.softmax(torch.randn(2, 4, 2, 16), 3)
    indices = torch.tensor([5, 0, 2, 3])
    for s in (dense, store):
        s.update(indices, final, branches, epoch=1)
    assert store.nbytes < dense.nbytes

    ours, exact = store.lookup(indices), dense.lookup(indices)
    assert torch.allclose(ours.final.sum(1), torch.ones(4), atol=1e-2)
    tol = 1e-2 if 'dtype' in options else 1e-6
    if 'topk' not in options:
        assert torch.allclose(ours.final, exact.final, atol=tol)
    # The kept entries are exact up to the storage type.
    top = exact.final.argmax(1)
    assert torch.allclose(ours.final[torch.arange(4), top],
                          exact.final[torch.arange(4), top], atol=tol)
    if options.get('branch_views') == 'unrotated':
        # View-major rows: only the first B (unrotated) rows have targets.
        assert ours.branch_written.tolist() == [True] * 4 + [False] * 4
        assert not ours.branches[:, 4:].any()
        assert torch.allclose(ours.branches[:, :4].argmax(2),
                              exact.branches[:, :4].argmax(2))
    else:
        assert ours.branch_written.tolist() == [True] * 8

    restored = PastPredictionStore(6, 8, 2, 2, **options)
    restored.load_state_dict(store.state_dict())
    assert torch.equal(restored.lookup(indices).final, ours.final)
    if set(options) - {'dtype'}:
        # Other tensors: a resume with other store settings is refused.
        with pytest.raises(LSSKDCheckpointError, match='store settings'):
            dense.load_state_dict(store.state_dict())
    else:
        # Another dtype alone converts on loading.
        dense.load_state_dict(store.state_dict())
        assert torch.allclose(dense.final[indices], final, atol=tol)


def test_bad_store_options_are_named():
    with pytest.raises(LSSKDConfigError, match='topk must be a positive'):
        PastPredictionStore(2, 2, 2, 2, topk=0)
    with pytest.raises(LSSKDConfigError, match='dtype must be'):
        PastPredictionStore(2, 2, 2, 2, dtype='int8')
    with pytest.raises(LSSKDConfigError, match="branch_views must be"):
        PastPredictionStore(2, 2, 2, 2, branch_views='first')


def linear_logits(rows: int, classes: int) -> torch.Tensor:
    return torch.nn.functional.linear(torch.randn(rows, 16),
                                      torch.randn(classes, 16))


@pytest.mark.parametrize('dtype', ['float32', 'float16', 'bfloat16'])
def test_a_store_written_in_bfloat16_training_resumes(dtype):
    """Under CPU autocast the softmax runs in bfloat16, so a float32 store
    holds rows rounded to bfloat16, whose sums miss 1 by a few 1e-3
    (0.0025 in a real 60-epoch PS-KD checkpoint, refused before): a store
    the plugin wrote itself must load, whatever its dtype."""
    torch.manual_seed(0)
    num_samples, classes, views = 64, 100, 4
    store = PastPredictionStore(num_samples, classes, views, 2, dtype=dtype)
    # Logits as a classifier's linear layer gives them under autocast.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        final = torch.softmax(
            linear_logits(num_samples, classes), 1)
        branches = torch.softmax(
            linear_logits(2 * num_samples * views, classes * views).view(
                2, num_samples, views, -1), 3)
    assert final.dtype == branches.dtype == torch.bfloat16
    store.update(torch.arange(num_samples), final, branches, epoch=3)
    assert (final.float().sum(1) - 1).abs().max() > 1e-3  # the case

    restored = PastPredictionStore(num_samples, classes, views, 2,
                                   dtype=dtype)
    restored.load_state_dict(store.state_dict())
    assert torch.equal(restored.final, store.final)
    assert torch.equal(restored.branches, store.branches)


@pytest.mark.parametrize('damage, problem', [
    (lambda rows: rows.mul_(1.05), r'final rows sum to 1 \+- 0.05'),
    (lambda rows: rows.fill_(0), r'final rows sum to 1 \+- 1,'),
])
def test_rows_that_are_not_distributions_are_still_refused(damage, problem):
    store = PastPredictionStore(4, 10, 1, 0)
    store.update(torch.arange(4), torch.full((4, 10), 0.1),
                 torch.zeros(0, 4, 1, 10), epoch=0)
    state = store.state_dict()
    damage(state['final'][2])
    with pytest.raises(LSSKDCheckpointError, match=problem):
        PastPredictionStore(4, 10, 1, 0).load_state_dict(state)
