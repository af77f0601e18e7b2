from typing import Dict, NamedTuple, Optional

import torch

from ..utils.validation import (LSSKDCheckpointError,
                                check_sample_indices)


class PastPredictions(NamedTuple):
    """Past predictions of one batch, on the model's device.

    Attributes:
        final (torch.Tensor): Final-classifier distributions, (B, C).
        branches (torch.Tensor): Branch SADs, view-major rows like the
            model's views: (num_branches, K * B, C * K).
        written (torch.Tensor): Whether each sample has a past prediction,
            bool of shape (B, ).
    """
    final: torch.Tensor
    branches: torch.Tensor
    written: torch.Tensor


class PastPredictionStore:
    """Per-sample predictions of the previous epoch, kept in host memory.

    Holds, for every training sample, the final classifier's distribution
    (C values) and every auxiliary branch's augmented distribution for each
    of the K views (K x C*K values per branch), plus the epoch each sample
    was last written in (-1: never).

    Args:
        num_samples (int): Size of the training set.
        num_classes (int): Number of classes C.
        num_views (int): Number of transforms K.
        num_branches (int): Number of auxiliary branches.
    """

    def __init__(self, num_samples: int, num_classes: int, num_views: int,
                 num_branches: int) -> None:
        self.num_samples = num_samples
        self.num_classes = num_classes
        self.num_views = num_views
        self.num_branches = num_branches
        self.final = torch.zeros(num_samples, num_classes)
        self.branches = torch.zeros(num_branches, num_samples, num_views,
                                    num_classes * num_views)
        self.written_epoch = torch.full((num_samples, ), -1, dtype=torch.long)

    def _check_indices(self, indices: torch.Tensor) -> None:
        check_sample_indices(indices, self.num_samples)

    def lookup(self, indices: torch.Tensor,
               device: Optional[torch.device] = None) -> PastPredictions:
        """Past predictions of a batch.

        Args:
            indices (torch.Tensor): Sample indices of shape (B, ).
            device (torch.device, optional): Where to put the result.

        Returns:
            PastPredictions: The batch's entries, branch rows view-major.
        """
        indices = indices.cpu()
        self._check_indices(indices)
        # (S, B, K, CK) -> (S, K, B, CK) -> (S, K*B, CK): the model's order.
        branches = self.branches[:, indices].transpose(1, 2).reshape(
            self.num_branches, self.num_views * len(indices),
            self.num_classes * self.num_views)
        return PastPredictions(
            final=self.final[indices].to(device, non_blocking=True),
            branches=branches.to(device, non_blocking=True),
            written=(self.written_epoch[indices] >= 0).to(
                device, non_blocking=True))

    def update(self, indices: torch.Tensor, final: torch.Tensor,
               branches: torch.Tensor, epoch: int) -> None:
        """Write one step's detached predictions.

        Args:
            indices (torch.Tensor): Sample indices of shape (B, ). A sample
                that appears twice (a distributed sampler pads an epoch with
                repeats) gets one of its predictions, both being valid.
            final (torch.Tensor): Final-classifier distributions, (B, C).
            branches (torch.Tensor): Branch SADs per sample and view,
                (num_branches, B, K, C * K).
            epoch (int): The current epoch.
        """
        indices = indices.cpu()
        self._check_indices(indices)
        branches = branches.detach().cpu()
        self.final[indices] = final.detach().cpu().to(self.final.dtype)
        self.branches[:, indices] = branches.to(self.branches.dtype)
        self.written_epoch[indices] = epoch

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """The store as plain tensors, for a checkpoint."""
        return dict(
            final=self.final,
            branches=self.branches,
            written_epoch=self.written_epoch)

    def load_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        """Restore the store from :meth:`state_dict`.

        Raises:
            LSSKDCheckpointError: If the saved store was made for another
                dataset size, number of classes, views or branches.
        """
        expected = self.state_dict()
        for key, tensor in expected.items():
            saved = state.get(key)
            if saved is None or tuple(saved.shape) != tuple(tensor.shape):
                got = None if saved is None else tuple(saved.shape)
                raise LSSKDCheckpointError(
                    f'resume: the past-prediction store in the checkpoint '
                    f'does not fit this run: {key!r} has shape {got}, '
                    f'expected {tuple(tensor.shape)} '
                    f'(samples={self.num_samples}, '
                    f'classes={self.num_classes}, views={self.num_views}, '
                    f'branches={self.num_branches}). Resume with the dataset '
                    f'and model the checkpoint was trained with, or start '
                    f'from its weights alone with load_from.')
        for key, tensor in expected.items():
            tensor.copy_(state[key])
