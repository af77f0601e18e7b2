import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmrazor.models.algorithms import BaseAlgorithm
from torch import nn

from ..utils import progressive_targets


@MODELS.register_module()
class LSSKD(BaseAlgorithm):
    """Layered Self-Supervised Knowledge Distillation.

    Implementation of `A Layered Self-Supervised Knowledge Distillation
    Framework for Efficient Multimodal Learning on the Edge
    <https://arxiv.org/abs/2506.07055>`_. A single network is its own
    teacher: auxiliary branches after every backbone stage classify joint
    (class, rotation) labels; the deepest branch distils into the shallower
    ones, each branch and the final classifier learn from soft targets that
    mix the label with their own previous-epoch prediction (PS-KD), and the
    branch features are pulled towards the backbone's last-stage feature.

    The wrapped classifier lives under ``architecture``; everything else
    (``aux_neck``, ``aux_head``) is training-time only, so the student's
    checkpoint is the ``architecture.`` keys and inference runs the plain
    classifier on unrotated images.

    Args:
        architecture (dict | BaseModel): The mmpretrain classifier
            (``ImageClassifier``-like: ``backbone``, ``neck``, ``head``). A
            config without a registry scope is built in mmpretrain's.
        out_indices (Sequence[int], optional): Backbone stages to attach
            branches to, written into the backbone config's ``out_indices``
            so a config inherited from mmpretrain need not restate the
            backbone. None keeps the backbone's own. Defaults to None.
        view_transform (dict): The self-supervised transform set.
            Defaults to ``dict(type='RotationViews')`` (four rotations).
        aux_neck (dict): The auxiliary branches; ``backbone`` is filled in
            from the architecture. Defaults to
            ``dict(type='AuxiliaryBranchNeck')``.
        aux_head (dict): The branch classifiers and their losses;
            ``num_classes``, ``in_channels``, ``num_branches`` and
            ``num_views`` are filled in. Defaults to
            ``dict(type='RotationJointHead')``.
        loss_cls (dict): Loss of the final classifier against its
            progressive soft targets; it replaces the classifier head's own
            loss during LSSKD training. Defaults to
            ``dict(type='CrossEntropyLoss', use_soft=True)``.
        loss_feat (dict): Feature-consistency loss between every shallower
            branch feature and the detached pooled last-stage feature.
            Defaults to ``dict(type='mmrazor.L2Loss', normalize=False,
            loss_weight=0.01)`` (squared L2 distance, averaged over images).
        data_preprocessor (dict | nn.Module, optional): A dict without
            ``type`` (as mmpretrain configs write it) becomes a
            ``ClsDataPreprocessor``. None takes the classifier's.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 architecture: Union[dict, BaseModel],
                 out_indices: Optional[Sequence[int]] = None,
                 view_transform: dict = dict(type='RotationViews'),
                 aux_neck: dict = dict(type='AuxiliaryBranchNeck'),
                 aux_head: dict = dict(type='RotationJointHead'),
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss', use_soft=True),
                 loss_feat: dict = dict(
                     type='mmrazor.L2Loss', normalize=False,
                     loss_weight=0.01),
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if not isinstance(architecture, dict):
            raise TypeError(
                'LSSKD builds its auxiliary branches from the classifier '
                'config, so architecture must be a config dict, got '
                f'{type(architecture).__name__}.')
        architecture = copy.deepcopy(architecture)
        if '.' not in architecture.get('type', ''):
            architecture.setdefault('_scope_', 'mmpretrain')
        backbone_cfg = architecture.get('backbone')
        if backbone_cfg is None or 'head' not in architecture:
            raise ValueError(
                'LSSKD wraps an ImageClassifier-like model with a backbone '
                'and a head, but the architecture config has keys '
                f'{sorted(architecture)}.')
        if out_indices is not None:
            backbone_cfg['out_indices'] = tuple(out_indices)
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type',
                                         'mmpretrain.ClsDataPreprocessor')
            if data_preprocessor.get('batch_augments'):
                raise ValueError(
                    'LSSKD builds joint (class, rotation) labels from hard '
                    'labels, so batch augments that mix labels (Mixup, '
                    'CutMix) are not supported: remove batch_augments from '
                    'data_preprocessor.')
        super().__init__(architecture, data_preprocessor, init_cfg)

        self.view_transform = MODELS.build(view_transform)
        self.num_classes = getattr(self.architecture.head, 'num_classes',
                                   None)
        if self.num_classes is None:
            raise ValueError(
                f'LSSKD reads the number of classes from the classifier '
                f'head, but {type(self.architecture.head).__name__} has no '
                f'num_classes. Use a head such as LinearClsHead.')

        aux_neck = dict(aux_neck)
        aux_neck.setdefault('backbone', backbone_cfg)
        self.aux_neck = MODELS.build(aux_neck)

        aux_head = dict(aux_head)
        aux_head.setdefault('num_classes', self.num_classes)
        aux_head.setdefault('in_channels', self.aux_neck.out_channels)
        aux_head.setdefault('num_branches', self.aux_neck.num_branches)
        aux_head.setdefault('num_views', self.num_views)
        self.aux_head = MODELS.build(aux_head)
        for name, expected in (('num_views', self.num_views),
                               ('num_branches', self.num_branches)):
            if getattr(self.aux_head, name) != expected:
                raise ValueError(
                    f'aux_head has {name}={getattr(self.aux_head, name)} but '
                    f'the model needs {expected}: leave it out of aux_head '
                    f'and LSSKD fills it in.')

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_feat = MODELS.build(loss_feat)

        # Set by PastPredictionHook; plain attributes, not module state, so
        # the store never enters the model's state dict or DDP's buffers.
        self.alpha = 0.0
        self._past_predictions = None
        self._step_predictions = None

    @property
    def num_views(self) -> int:
        """int: Views per image made by the transform set."""
        return self.view_transform.num_views

    @property
    def num_branches(self) -> int:
        """int: Number of auxiliary branches."""
        return self.aux_neck.num_branches

    def attach_past_predictions(self, store) -> None:
        """Use ``store`` for the progressive targets (called by the hook)."""
        self._past_predictions = store

    def pop_step_predictions(
            self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hand the last step's detached predictions to the hook.

        Returns:
            tuple: Sample indices (B, ), final distributions (B, C) and
            branch SADs (num_branches, B, K, C * K).
        """
        if self._step_predictions is None:
            raise RuntimeError(
                'No training step recorded predictions since the last call.')
        predictions, self._step_predictions = self._step_predictions, None
        return predictions

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """One LSSKD training forward: every loss term, logged apart.

        Args:
            inputs (torch.Tensor): Preprocessed images, (B, C, H, W).
            data_samples (List[DataSample]): Their data samples, with
                ``gt_label`` and ``sample_idx``.

        Returns:
            dict[str, torch.Tensor]: ``loss_cls``, ``loss_hier``,
            ``loss_kl``, ``loss_feat`` and each branch's training accuracy.
        """
        if self._past_predictions is None:
            raise RuntimeError(
                "LSSKD needs its past predictions: add dict(type="
                "'PastPredictionHook') to custom_hooks in the config.")
        batch = inputs.size(0)
        labels = torch.cat([s.gt_label for s in data_samples])
        indices = self._sample_indices(data_samples)
        past = self._past_predictions.lookup(indices, inputs.device)
        past_weight = self.alpha * past.written.to(inputs.dtype)

        # One backbone pass over every view; the unrotated views come first.
        views = self.view_transform(inputs)
        stages = self.architecture.extract_feat(views, stage='backbone')

        # The classifier's own neck and head see the unrotated images only.
        cls_feats = tuple(x[:batch] for x in stages)
        if self.architecture.with_neck:
            cls_feats = self.architecture.neck(cls_feats)
        cls_logits = self.architecture.head(cls_feats)
        losses = dict(
            loss_cls=self.loss_cls(
                cls_logits,
                progressive_targets(labels, self.num_classes, past.final,
                                    past_weight)))

        # The auxiliary branches see every view, with joint labels.
        aux_feats = self.aux_neck(stages)
        aux_logits = self.aux_head(aux_feats)
        losses.update(
            self.aux_head.loss(aux_logits,
                               self.view_transform.joint_labels(labels),
                               past.branches,
                               past_weight.repeat(self.num_views)))

        last_feat = F.adaptive_avg_pool2d(stages[-1], 1).flatten(1).detach()
        losses['loss_feat'] = sum(
            self.loss_feat(feat, last_feat) for feat in aux_feats[:-1])

        branch_probs = self.aux_head.probabilities(aux_logits)
        self._step_predictions = (
            indices, cls_logits.detach().softmax(dim=1),
            branch_probs.unflatten(1, (self.num_views, batch)).transpose(1, 2))
        return losses

    @staticmethod
    def _sample_indices(data_samples: List[DataSample]) -> torch.Tensor:
        try:
            return torch.tensor([s.sample_idx for s in data_samples])
        except AttributeError:
            raise KeyError(
                "LSSKD keeps a past prediction per training sample and needs "
                "each data sample's 'sample_idx': keep 'sample_idx' in the "
                "meta_keys of PackInputs in the train pipeline.") from None
