import torch

from mmlsskd.models import progressive_targets


def test_without_past_prediction_target_is_one_hot():
    past = torch.full((2, 3), 1 / 3)
    target = progressive_targets(
        torch.tensor([2, 0]), 3, past, torch.zeros(2))
    assert torch.equal(target, torch.tensor([[0., 0., 1.], [1., 0., 0.]]))


def test_mixes_label_and_past_prediction_by_hand():
    past = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    # Row 0 has a past prediction (alpha 0.4), row 1 has none (weight 0).
    target = progressive_targets(
        torch.tensor([1, 2]), 3, past, torch.tensor([0.4, 0.0]))
    expected = torch.tensor([[0.4 * 0.2, 0.6 + 0.4 * 0.5, 0.4 * 0.3],
                             [0.0, 0.0, 1.0]])
    assert torch.allclose(target, expected)
    assert torch.allclose(target.sum(1), torch.ones(2))
