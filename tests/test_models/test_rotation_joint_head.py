import math

import pytest
import torch
import torch.nn.functional as F

from mmlsskd.models import RotationJointHead


def make_head(**kwargs):
    cfg = dict(num_classes=2, in_channels=3, num_branches=2, num_views=2)
    cfg.update(kwargs)
    return RotationJointHead(**cfg)


def test_forward_shapes():
    head = make_head(num_branches=3)
    logits = head([torch.randn(5, 3) for _ in range(3)])
    assert [tuple(x.shape) for x in logits] == [(5, 4)] * 3


def test_hierarchical_loss_by_hand():
    head = make_head(loss_kl=dict(type='mmrazor.KLDivergence', tau=1.0))
    shallow = torch.tensor([[0., 0., 0., 0.]])
    deep = torch.tensor([[math.log(2.), 0., 0., 0.]])
    joint = torch.tensor([1])
    past = torch.tensor([[[0.1, 0.2, 0.3, 0.4]], [[0.25, 0.25, 0.25, 0.25]]])
    alpha = torch.tensor([0.5])
    losses = head.loss([shallow, deep], joint, past, alpha)
    # Targets: 0.5 * onehot(1) + 0.5 * past.
    t_shallow = torch.tensor([0.05, 0.6, 0.15, 0.2])
    t_deep = torch.tensor([0.125, 0.625, 0.125, 0.125])
    log_p_shallow = torch.full((4, ), math.log(0.25))
    log_p_deep = torch.log(torch.tensor([0.4, 0.2, 0.2, 0.2]))
    expected = -(t_shallow * log_p_shallow).sum() - (t_deep * log_p_deep).sum()
    assert torch.allclose(losses['loss_hier'], expected)


def test_kl_direction_temperature_and_stop_gradient():
    tau = 2.0
    head = make_head(loss_kl=dict(type='mmrazor.KLDivergence', tau=tau))
    shallow = torch.tensor([[1., 0., 0., 0.]], requires_grad=True)
    deep = torch.tensor([[0., 2., 0., 1.]], requires_grad=True)
    losses = head.loss([shallow, deep], torch.tensor([0]),
                       torch.zeros(2, 1, 4), torch.zeros(1))
    # tau^2 * KL(SAD_deep || SAD_shallow), both softened by tau.
    p = F.softmax(deep.detach() / tau, 1)
    q = F.softmax(shallow.detach() / tau, 1)
    expected = tau**2 * (p * (p.log() - q.log())).sum()
    assert torch.allclose(losses['loss_kl'], expected)
    losses['loss_kl'].backward()
    assert deep.grad is None or torch.count_nonzero(deep.grad) == 0
    assert torch.count_nonzero(shallow.grad) > 0


def test_branch_accuracy_is_logged():
    head = make_head()
    logits = [torch.tensor([[5., 0, 0, 0], [0, 5., 0, 0]])] * 2
    losses = head.loss(logits, torch.tensor([0, 3]), torch.zeros(2, 2, 4),
                       torch.zeros(2))
    assert losses['acc_branch1'].item() == pytest.approx(50.0)
    assert losses['acc_branch2'].item() == pytest.approx(50.0)


def test_needs_two_branches():
    with pytest.raises(ValueError, match='at least two branches'):
        make_head(num_branches=1)


def test_without_hierarchical_softening_targets_are_hard_joint_labels():
    head = make_head(hierarchical_softening=False)
    logits = [torch.randn(3, 4), torch.randn(3, 4)]
    joint = torch.tensor([1, 3, 0])
    past = torch.softmax(torch.randn(2, 3, 4), dim=2)
    losses = head.loss(logits, joint, past, torch.full((3, ), 0.7))
    expected = sum(F.cross_entropy(x, joint) for x in logits)
    assert torch.allclose(losses['loss_hier'], expected)


def test_dropping_the_kl_term():
    head = make_head(loss_kl=None)
    losses = head.loss([torch.randn(2, 4)] * 2, torch.tensor([0, 1]),
                       torch.zeros(2, 2, 4), torch.zeros(2))
    assert 'loss_kl' not in losses and 'loss_hier' in losses


@pytest.mark.parametrize('reduction', ['mean', 'sum'])
def test_branch_losses_in_one_call_only_where_they_average_over_rows(
        reduction):
    """A loss that averages over rows takes all branches in one call (times
    the number of branches); any other is called per branch. Both give the
    per-branch sum."""
    head = make_head(
        num_branches=3,
        loss_hier=dict(type='CrossEntropyLoss', use_soft=True,
                       reduction=reduction),
        loss_kl=dict(type='mmrazor.KLDivergence', tau=2.0,
                     reduction='sum' if reduction == 'sum' else 'batchmean'))
    assert head._stacked == dict(hier=reduction == 'mean',
                                 kl=reduction == 'mean')
    logits = [torch.randn(6, 4) for _ in range(3)]
    labels = torch.tensor([0, 3, 1, 2, 3, 0])
    past = torch.randn(3, 6, 4).softmax(-1)
    weight = torch.full((6, ), 0.3)
    losses = head.loss(logits, labels, past, weight)

    targets = 0.7 * F.one_hot(labels, 4) + 0.3 * past
    hier = [(-t * F.log_softmax(x, 1)).sum(1) for x, t in zip(logits, targets)]
    expected = sum(h.mean() if reduction == 'mean' else h.sum() for h in hier)
    torch.testing.assert_close(losses['loss_hier'], expected)
    teacher = F.softmax(logits[-1] / 2.0, 1)
    kl = [(teacher * (teacher.log() - F.log_softmax(x / 2.0, 1))).sum() * 4
          for x in logits[:-1]]
    expected_kl = sum(k / 6 if reduction == 'mean' else k for k in kl)
    torch.testing.assert_close(losses['loss_kl'], expected_kl)


def test_a_loss_that_fails_on_stacked_rows_is_called_per_branch():
    from mmlsskd.models.utils import averages_over_rows

    class FirstRowOnly(torch.nn.Module):

        def forward(self, x, y):
            return (x[0] - y[0]).pow(2).sum()

    assert not averages_over_rows(FirstRowOnly())
    assert averages_over_rows(torch.nn.MSELoss())


def test_each_branch_accuracy_is_logged_under_its_own_branch():
    """Branches right on 1, 2 and 3 of 4 rows: ``acc_branch{s}`` is
    branch ``s``'s own accuracy, shallowest first."""
    head = make_head(num_branches=3)
    joint = torch.tensor([0, 1, 2, 3])
    right = torch.eye(4) * 5  # each row's own joint label wins
    wrong = right.roll(1, dims=1)
    logits = [torch.cat([right[:n], wrong[n:]]) for n in (1, 2, 3)]
    losses = head.loss(logits, joint, torch.zeros(3, 4, 4), torch.zeros(4))
    assert [losses[f'acc_branch{s}'].item() for s in (1, 2, 3)] == \
        pytest.approx([25.0, 50.0, 75.0])


def test_the_kl_teacher_is_detached_whatever_the_loss_does():
    """A KL that leaves its teacher attached (``teacher_detach=False``)
    still never moves the deepest branch: the head detaches it."""
    head = make_head(loss_kl=dict(type='mmrazor.KLDivergence', tau=2.0,
                                  teacher_detach=False))
    shallow = torch.tensor([[1., 0., 0., 0.]], requires_grad=True)
    deep = torch.tensor([[0., 2., 0., 1.]], requires_grad=True)
    head.loss([shallow, deep], torch.tensor([0]), torch.zeros(2, 1, 4),
              torch.zeros(1))['loss_kl'].backward()
    assert deep.grad is None or torch.count_nonzero(deep.grad) == 0
    assert torch.count_nonzero(shallow.grad) > 0


def test_a_loss_that_raises_on_the_example_is_called_per_branch():
    """A loss that cannot take the check's example (another shape, a
    target it rejects) is not taken to average over rows."""
    from mmlsskd.models.utils import averages_over_rows

    class Raises(torch.nn.Module):

        def forward(self, x, y):
            raise ValueError('not this shape')

    assert not averages_over_rows(Raises())


def test_a_small_summed_loss_is_not_taken_for_a_mean():
    """The identity is checked to float64 precision, not to an absolute
    tolerance a small loss would pass: a sum over rows scaled down (a small
    loss_weight) differs from the stacked call by less than 1."""
    from mmlsskd.models.utils import averages_over_rows

    class SmallSum(torch.nn.Module):

        def forward(self, x, y):
            return 1e-3 * (x - y).pow(2).sum()

    class SmallMean(torch.nn.Module):

        def forward(self, x, y):
            return 1e-3 * (x - y).pow(2).sum(-1).mean()

    assert not averages_over_rows(SmallSum())
    assert averages_over_rows(SmallMean())
