"""The past predictions of one batch, as the models read them."""
from typing import NamedTuple

import torch


class PastPredictions(NamedTuple):
    """Past predictions of one batch, on the model's device.

    Attributes:
        final (torch.Tensor): Final-classifier distributions, (B, C).
        branches (torch.Tensor): Branch SADs, view-major rows like the
            model's views: (num_branches, K * B, C * K).
        written (torch.Tensor): Whether each sample has a past prediction,
            bool of shape (B, ).
        branch_written (torch.Tensor): Whether each view row of
            ``branches`` holds one, bool of shape (K * B, ): ``written`` for
            every view, or for the unrotated view only when the store keeps
            no other.
    """
    final: torch.Tensor
    branches: torch.Tensor
    written: torch.Tensor
    branch_written: torch.Tensor
