from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import nn

from ...utils.errors import config_error
from ..utils import (averages_over_rows, mix_rows, progressive_targets,
                     sum_over_parts)
from ..utils.loss_config import check_loss_cfg


@MODELS.register_module()
class RotationJointHead(BaseModule):
    """Joint-label classifiers of the auxiliary branches of LSSKD.

    Branch ``s`` has a linear classifier over ``num_classes * num_views``
    joint labels; its softmax is the self-supervised augmented distribution
    SAD_s. The head computes the two branch losses of LSSKD
    (arXiv 2506.07055):

    - hierarchical label softening: cross-entropy of every branch against
      the joint one-hot label mixed with that branch's SAD from the
      previous epoch (``loss_hier``, summed over branches);
    - deep-to-shallow distillation: ``tau^2 * KL(SAD_S || SAD_s)`` from the
      deepest branch to every other one, the deepest side detached
      (``loss_kl``, summed over the shallower branches).

    Args:
        num_classes (int): Number of classes of the dataset.
        in_channels (int): Dimension of every branch feature.
        num_branches (int): Number of auxiliary branches.
        num_views (int): Number of self-supervised transforms ``K``.
            Defaults to 4.
        loss_hier (dict): Soft-label classification loss; its
            ``loss_weight`` weights the term.
            Defaults to ``dict(type='CrossEntropyLoss', use_soft=True)``.
        loss_kl (dict, optional): Distillation loss called as
            ``loss(student, teacher)`` on logits; its ``tau`` and
            ``loss_weight`` apply. None drops the term (an ablation).
            Defaults to ``dict(type='mmrazor.KLDivergence', tau=3.0)``.
        hierarchical_softening (bool): Whether the branch targets mix in the
            branch's previous-epoch SAD. False trains every branch on hard
            joint labels (an ablation; HSSAKD's branch loss).
            Defaults to True.
        init_cfg (dict, optional): Initialization config. Defaults to None:
            PyTorch's default init of the linear layers, as the official
            HSSAKD code (mmpretrain's heads use Normal(std=0.01)).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 num_branches: int,
                 num_views: int = 4,
                 loss_hier: dict = dict(
                     type='CrossEntropyLoss', use_soft=True),
                 loss_kl: Optional[dict] = dict(
                     type='mmrazor.KLDivergence', tau=3.0),
                 hierarchical_softening: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_branches < 2:
            raise config_error(
                'aux_head.num_branches', f'RotationJointHead needs at least '
                f'two branches for the deep-to-shallow distillation, got '
                f'{num_branches}', 'Return at least two backbone stages.')
        self.num_classes = num_classes
        self.num_views = num_views
        self.num_joint_classes = num_classes * num_views
        self.classifiers = nn.ModuleList(
            nn.Linear(in_channels, self.num_joint_classes)
            for _ in range(num_branches))
        check_loss_cfg('aux_head.loss_hier', loss_hier)
        check_loss_cfg('aux_head.loss_kl', loss_kl, optional=True)
        self.loss_hier = MODELS.build(loss_hier)
        self.loss_kl = MODELS.build(loss_kl) if loss_kl else None
        self.hierarchical_softening = hierarchical_softening
        # Losses that average over rows take every branch in one call.
        self._stacked = dict(
            hier=averages_over_rows(self.loss_hier),
            kl=self.loss_kl is not None and averages_over_rows(self.loss_kl))

    @property
    def num_branches(self) -> int:
        """int: The number of branch classifiers."""
        return len(self.classifiers)

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """Joint-label logits of every branch.

        The part can be traced by torch.fx.

        Args:
            feats (Sequence[torch.Tensor]): One (N, D) feature per branch.

        Returns:
            tuple[torch.Tensor]: One (N, num_classes * num_views) logit
            tensor per branch, shallowest first.
        """
        return tuple(fc(x) for fc, x in zip(self.classifiers, feats))

    def loss(self,
             logits: Sequence[torch.Tensor],
             joint_labels: torch.Tensor,
             past_probs: torch.Tensor,
             past_weight: torch.Tensor,
             mixing: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The branch losses and training accuracies.

        Takes the logits of :meth:`forward` rather than features, because the
        algorithm also stores their softmax for the next epoch.

        Args:
            logits (Sequence[torch.Tensor]): Output of :meth:`forward`.
            joint_labels (torch.Tensor): Joint labels of shape (N, ).
            past_probs (torch.Tensor): Every branch's SAD of the previous
                epoch for the same rows, shape (num_branches, N, C * K).
            past_weight (torch.Tensor): Weight of the past SAD per row,
                shape (N, ): ``alpha_t`` where a past SAD exists, else 0.
            mixing (torch.Tensor, optional): How the batch's B images were
                mixed (B, B), None if not: the targets of each view are
                mixed with it (the rows are view-major, N = K * B). The
                accuracies stay against each image's own joint label.
                Defaults to None.

        Returns:
            dict[str, torch.Tensor]: ``loss_hier``, ``loss_kl`` (unless
            dropped) and ``acc_branch{s}`` (joint-label top-1 of branch
            ``s``, from 1).
        """
        if not self.hierarchical_softening:
            past_weight = torch.zeros_like(past_weight)
        losses = dict()
        # Every branch at once: (num_branches, N, C * K).
        logits = stack_branches(logits)
        targets = progressive_targets(joint_labels, self.num_joint_classes,
                                      past_probs, past_weight)
        if mixing is not None:
            targets = mix_rows(mixing, targets.unflatten(
                1, (self.num_views, -1))).flatten(1, 2)
        losses['loss_hier'] = sum_over_parts(self.loss_hier, logits, targets,
                                             self._stacked['hier'])
        if self.loss_kl is not None:
            shallower = logits[:-1]
            deepest = logits[-1].detach().expand_as(shallower)
            losses['loss_kl'] = sum_over_parts(self.loss_kl, shallower,
                                               deepest, self._stacked['kl'])
        for s, accuracy in enumerate(self.accuracies(logits, joint_labels),
                                     1):
            losses[f'acc_branch{s}'] = accuracy
        return losses

    @staticmethod
    @torch.no_grad()
    def accuracies(logits: Sequence[torch.Tensor],
                   joint_labels: torch.Tensor) -> Tuple[torch.Tensor]:
        """Every branch's joint-label top-1 accuracy in percent, as
        mmpretrain's ``Accuracy.calculate(topk=(1, ))`` gives it, for all
        branches in a few operations instead of a dozen per branch.

        Args:
            logits (Sequence[torch.Tensor]): Output of :meth:`forward`.
            joint_labels (torch.Tensor): Joint labels of shape (N, ).

        Returns:
            tuple[torch.Tensor]: One 0-dim accuracy per branch.
        """
        hits = stack_branches(logits).argmax(dim=-1) == joint_labels
        return (hits.float().mean(dim=1) * 100).unbind()

    @staticmethod
    def probabilities(logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """Detached SADs of every branch, stacked: (num_branches, N, C*K)."""
        return stack_branches(logits).detach().softmax(dim=-1)


def stack_branches(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """The branches' logits as one (num_branches, N, C * K) tensor (as
    given if they already are)."""
    return logits if torch.is_tensor(logits) else torch.stack(tuple(logits))
