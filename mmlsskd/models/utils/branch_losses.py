import torch
from torch import nn


def averages_over_rows(loss: nn.Module, dim: int = 8) -> bool:
    """Whether ``loss(x, y)`` is a mean over the rows of ``x`` and ``y``.

    For such a loss, one call on ``S`` equal-sized parts stacked along the
    rows, times ``S``, is the sum of the ``S`` per-part calls: mmpretrain's
    ``CrossEntropyLoss`` (``reduction='mean'``), mmrazor's ``KLDivergence``
    (``reduction='batchmean'``) and ``L2Loss`` are. It is checked on a
    random example in float64, so that any other loss a config names is
    called per part instead.

    Args:
        loss (nn.Module): A loss called as ``loss(x, y)`` with ``x`` and
            ``y`` of one shape (N, D) (``y`` a distribution for soft
            cross-entropy; logits or features for the others).
        dim (int): The feature size of the example. Defaults to 8.

    Returns:
        bool: True if the identity holds.
    """
    # Its own generator: the check must not move the random stream that
    # training draws its initial weights from.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, dim, generator=generator, dtype=torch.float64)
    y = torch.randn(2, 3, dim, generator=generator,
                    dtype=torch.float64).softmax(-1)
    try:
        with torch.no_grad():
            parts = loss(x[0], y[0]) + loss(x[1], y[1])
            stacked = loss(x.flatten(0, 1), y.flatten(0, 1)) * 2
        return torch.is_tensor(stacked) and stacked.dim() == 0 and bool(
            torch.isclose(stacked, parts, rtol=1e-9, atol=0))
    except (RuntimeError, TypeError, ValueError):
        return False


def sum_over_parts(loss: nn.Module, inputs: torch.Tensor,
                   targets: torch.Tensor, stacked: bool) -> torch.Tensor:
    """``sum_s loss(inputs[s], targets[s])`` over the leading dimension.

    Args:
        loss (nn.Module): The loss, called as ``loss(x, y)``.
        inputs (torch.Tensor): Parts stacked, (S, N, D).
        targets (torch.Tensor): Their targets, (S, N, D).
        stacked (bool): Whether the loss averages over rows
            (:func:`averages_over_rows`): then one call on all ``S * N``
            rows, times ``S``, gives the sum with fewer operations.

    Returns:
        torch.Tensor: The summed loss.
    """
    if stacked:
        return loss(inputs.flatten(0, 1), targets.flatten(0, 1)) * len(inputs)
    return sum(loss(x, y) for x, y in zip(inputs, targets))
