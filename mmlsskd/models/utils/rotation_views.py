from typing import Sequence

import torch
from mmpretrain.registry import MODELS
from torch import nn

from ...utils.errors import config_error


@MODELS.register_module()
class RotationViews(nn.Module):
    """The self-supervised transform set of LSSKD: image rotations.

    Every image of a batch of ``B`` becomes ``K`` views, stacked view-major:
    row ``k * B + i`` is image ``i`` under transform ``k``, so the first ``B``
    rows are the unrotated images. The joint ("self-supervised augmented")
    label of image ``i`` with class ``y_i`` under transform ``k`` is
    ``y_i * K + k`` (class-major, as in HSSAKD, arXiv 2107.13715).

    Args:
        angles (Sequence[int]): Rotation angles in degrees, multiples of 90.
            The first must be 0: it is the view the final classifier sees.
            Defaults to ``(0, 90, 180, 270)``.
    """

    def __init__(self, angles: Sequence[int] = (0, 90, 180, 270)) -> None:
        super().__init__()
        angles = tuple(int(a) for a in angles)
        if not angles or angles[0] != 0:
            raise config_error(
                'view_transform.angles', f'must start with 0 (the unrotated '
                f'view the classifier is trained on), got {angles}',
                'Use e.g. angles=(0, 90, 180, 270).')
        if any(a % 90 for a in angles) or len(set(a % 360 for a in angles)) \
                != len(angles):
            raise config_error(
                'view_transform.angles', f'must be distinct multiples of 90 '
                f'degrees, got {angles}', 'Use e.g. angles=(0, 90, 180, 270).')
        self.angles = angles
        self.quarter_turns = [(a // 90) % 4 for a in angles]

    @property
    def num_views(self) -> int:
        """int: The number of views ``K`` per image."""
        return len(self.angles)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Stack the views of a batch.

        Args:
            inputs (torch.Tensor): Images of shape (B, C, H, W).

        Returns:
            torch.Tensor: Views of shape (K * B, C, H, W), view-major.
        """
        self.check_image_size(*inputs.shape[-2:])
        return torch.cat(
            [torch.rot90(inputs, t, (2, 3)) for t in self.quarter_turns])

    def check_image_size(self, height: int, width: int) -> None:
        """Rotations by 90 degrees need square images.

        Raises:
            LSSKDConfigError: For non-square images, naming the fix.
        """
        if height != width and any(t % 2 for t in self.quarter_turns):
            raise config_error(
                'view_transform', f'angles {self.angles} rotate by 90 '
                f'degrees, which changes the shape of {height}x{width} '
                f'images', "Crop or resize to a square in the train pipeline "
                "(e.g. dict(type='RandomResizedCrop', scale=224)) or use "
                'angles=(0, 180).')

    def joint_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Joint labels of the views returned by :meth:`forward`.

        Args:
            labels (torch.Tensor): Class labels of shape (B, ).

        Returns:
            torch.Tensor: Joint labels ``y * K + k`` of shape (K * B, ),
            view-major.
        """
        views = torch.arange(self.num_views, device=labels.device)
        return (labels.unsqueeze(0) * self.num_views +
                views.unsqueeze(1)).reshape(-1)

    def class_logits(self, joint_logits: torch.Tensor, batch_size: int,
                     num_views: int = None) -> torch.Tensor:
        """Each view's class logits from joint-label logits.

        For view ``k`` only the joint labels ``c * K + k`` match the
        transform that was applied: those ``C`` logits are that view's class
        logits, and their softmax its class distribution.

        Args:
            joint_logits (torch.Tensor): Logits of (at least) the first
                ``num_views`` views of :meth:`forward`, shape
                (>= num_views * B, C * K), view-major.
            batch_size (int): ``B``.
            num_views (int, optional): How many views, from the first.
                Defaults to all ``K``.

        Returns:
            torch.Tensor: Class logits of shape (num_views * B, C),
            view-major.
        """
        num_views = self.num_views if num_views is None else num_views
        rows = num_views * batch_size
        joint = joint_logits[:rows].unflatten(1, (-1, self.num_views))
        own = torch.arange(
            num_views, device=joint.device).repeat_interleave(batch_size)
        return joint[torch.arange(rows, device=joint.device), :, own]

    def class_probabilities(self, joint_logits: torch.Tensor,
                            batch_size: int) -> torch.Tensor:
        """Class distributions from joint-label logits over all views: the
        softmax of every view's :meth:`class_logits`, averaged over views.

        Args:
            joint_logits (torch.Tensor): Logits of the views of
                :meth:`forward`, shape (K * B, C * K), view-major.
            batch_size (int): ``B``.

        Returns:
            torch.Tensor: Class probabilities of shape (B, C).
        """
        return self.class_logits(joint_logits, batch_size).softmax(
            dim=-1).unflatten(0, (self.num_views, batch_size)).mean(dim=0)
