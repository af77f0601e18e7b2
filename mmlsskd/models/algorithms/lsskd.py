import inspect
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch import nn

from ...structures import PastPredictions
from ...utils.errors import check_unit_interval, config_error
from ..heads.rotation_joint_head import stack_branches
from ..utils import averages_over_rows, run_named, sum_over_parts
from ..utils.backbone_stages import (check_branch_stages,
                                     choose_branch_stages,
                                     probe_backbone_stages)
from ..utils.loss_config import check_loss_cfg
from .pskd import PSKD


def _input_size(aux_neck: dict) -> Tuple[int, int]:
    """The training image size the auxiliary neck is built for (its
    ``input_size``, else that argument's default)."""
    size = aux_neck.get('input_size')
    if size is None:
        neck = MODELS.get(aux_neck.get('type', 'AuxiliaryBranchNeck'))
        default = inspect.signature(neck).parameters.get('input_size') \
            if neck is not None else None
        size = default.default if default is not None else 224
    return (size, size) if isinstance(size, int) else tuple(size)


@MODELS.register_module()
class LSSKD(PSKD):
    """Layered Self-Supervised Knowledge Distillation.

    Implementation of `A Layered Self-Supervised Knowledge Distillation
    Framework for Efficient Multimodal Learning on the Edge
    <https://arxiv.org/abs/2506.07055>`_. A single network is its own
    teacher: auxiliary branches after every backbone stage classify joint
    (class, rotation) labels; the deepest branch distils into the shallower
    ones, each branch and the final classifier learn from soft targets that
    mix the label with their own previous-epoch prediction (PS-KD, the base
    class), and the branch features are pulled towards the backbone's
    last-stage feature.

    The wrapped classifier lives under ``architecture``; everything else
    (``aux_neck``, ``aux_head``) is training-time only, so the student's
    checkpoint is the ``architecture.`` keys and inference runs the plain
    classifier on unrotated images.

    Args:
        architecture (dict): The mmpretrain classifier
            (``ImageClassifier``-like: ``backbone``, ``neck``, ``head``). A
            config without a registry scope is built in mmpretrain's.
        out_indices (str | Sequence[int], optional): Backbone outputs to
            attach branches to, written into the backbone config's
            ``out_indices`` so a config inherited from mmpretrain need not
            restate the backbone. ``'auto'`` finds the backbone's stages by
            probing it and picks the last output of each of its four deepest
            resolutions (four evenly spaced blocks for a vision transformer),
            always ending with the stage the classifier reads
            (:func:`choose_branch_stages`); the choice is logged. A sequence
            is checked to include the classifier's stages and to end with
            its last one. None keeps the backbone config's own, all of which
            the classifier then reads. Either way the classifier's neck
            reads exactly the outputs it read before wrapping, and a dry run
            at build time checks that they keep their shapes and that every
            trainable backbone parameter gets a gradient. Defaults to
            ``'auto'``.
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
        loss_feat (dict, optional): Feature-consistency loss between every
            shallower branch feature and the detached feature the
            classifier reads: its neck's output on every view (for a
            global-average-pooling neck, the pooled last stage; the last
            stage is pooled here if the neck leaves a feature map). None
            drops the term (an ablation). Defaults to
            ``dict(type='mmrazor.L2Loss', normalize=False, loss_weight=0.01)``
            (squared L2 distance, averaged over images).
        loss_cls_distill (dict, optional): Distillation of the deepest
            branch into the final classifier, called as
            ``loss(classifier_logits, teacher_logits)`` (e.g.
            ``mmrazor.KLDivergence``). The teacher is the deepest branch's
            class logits of each view: its joint logits ``c * K + k`` for the
            view's own transform ``k``, detached. Without it only
            ``loss_cls`` reaches the classifier (the paper's losses).
            Logged as ``loss_cls_distill``. None drops the term.
            Defaults to None.
        cls_distill_views (str): ``'unrotated'``: distil on the unrotated
            view only; ``'all'``: the classifier also classifies the rotated
            views and is distilled on every view (as HSSAKD distils its
            final classifier). Defaults to ``'unrotated'``.
        branch_target_weight (float): ``beta``, the share of the deepest
            branch's current class distribution of the unrotated view
            (detached) in the classifier's target:
            ``(1 - beta) * progressive_target + beta * branch_probs``.
            0 keeps PS-KD's target. Defaults to 0.
        evaluate_branches (bool): Whether validation and testing also
            classify with every auxiliary branch, for
            :class:`BranchAccuracy`. It costs one pass over all views per
            batch and never changes the classifier's own predictions.
            Defaults to False.
        channels_last (bool): Whether to keep the convolution weights of the
            classifier and the branches, and so the activations, in the
            channels-last memory format (see :class:`PSKD`). Defaults to
            False.
        compile_losses (dict, optional): ``torch.compile`` options for the
            training forward and its losses (:meth:`compute_losses`, one
            graph; see :class:`PSKD`). Defaults to None (eager).
        data_preprocessor (dict | nn.Module, optional): A dict without
            ``type`` (as mmpretrain configs write it) becomes a
            ``ClsDataPreprocessor``. None takes the classifier's.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 architecture: dict,
                 out_indices: Union[str, Sequence[int], None] = 'auto',
                 view_transform: dict = dict(type='RotationViews'),
                 aux_neck: dict = dict(type='AuxiliaryBranchNeck'),
                 aux_head: dict = dict(type='RotationJointHead'),
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss', use_soft=True),
                 loss_feat: Optional[dict] = dict(
                     type='mmrazor.L2Loss', normalize=False,
                     loss_weight=0.01),
                 loss_cls_distill: Optional[dict] = None,
                 cls_distill_views: str = 'unrotated',
                 branch_target_weight: float = 0.,
                 evaluate_branches: bool = False,
                 channels_last: bool = False,
                 compile_losses: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        input_size = _input_size(aux_neck)
        stages = positions = None
        if isinstance(architecture, dict) and out_indices is not None and \
                isinstance(architecture.get('backbone'), dict):
            stages = probe_backbone_stages(
                architecture['backbone'], input_size,
                None if isinstance(out_indices, str) else out_indices)
            if isinstance(out_indices, str):
                if out_indices != 'auto':
                    raise config_error(
                        'model.out_indices', f"must be 'auto', None or a "
                        f'sequence of ints, got {out_indices!r}',
                        "Leave it out (it defaults to 'auto').")
                indices = choose_branch_stages(stages)
            else:
                indices = check_branch_stages(stages, out_indices)
            stages.require_feature_maps(indices)
            architecture = dict(architecture)
            architecture['backbone'] = dict(architecture['backbone'],
                                            out_indices=indices)
            # Where the classifier's own stages are among the outputs.
            positions = tuple(indices.index(i) for i in stages.classifier)
        super().__init__(
            architecture,
            loss_cls=loss_cls,
            channels_last=channels_last,
            compile_losses=compile_losses,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self._classifier_positions = positions
        self.evaluate_branches = evaluate_branches
        self.view_transform = MODELS.build(view_transform)

        aux_neck = dict(aux_neck)
        aux_neck.setdefault('backbone', architecture['backbone'])
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
                raise config_error(
                    'aux_head', f'{name}={getattr(self.aux_head, name)} but '
                    f'the model needs {expected}', 'Leave it out of aux_head '
                    'and LSSKD fills it in.')
        check_loss_cfg('loss_feat', loss_feat, optional=True)
        self.loss_feat = MODELS.build(loss_feat) if loss_feat else None
        self._feat_loss_stacked = bool(
            loss_feat) and averages_over_rows(self.loss_feat)
        check_loss_cfg('loss_cls_distill', loss_cls_distill, optional=True)
        self.loss_cls_distill = (
            MODELS.build(loss_cls_distill) if loss_cls_distill else None)
        if cls_distill_views not in ('unrotated', 'all'):
            raise config_error(
                'cls_distill_views', f"must be 'unrotated' or 'all', got "
                f'{cls_distill_views!r}', "Use cls_distill_views='all' to "
                'distil the classifier on every view.')
        self.cls_distill_views = cls_distill_views
        check_unit_interval(
            'branch_target_weight', branch_target_weight,
            "It is the deepest branch's share of the classifier's target; "
            '0 keeps the progressive target alone.')
        self.branch_target_weight = branch_target_weight
        self._apply_memory_format()
        if stages is not None:
            # Its dummy image must not move the random stream training
            # starts from (see probe_backbone_stages).
            with torch.random.fork_rng(devices=[]):
                self._check_wrapped_classifier(stages, input_size)
            how = 'chosen' if out_indices == 'auto' else 'configured'
            MMLogger.get_current_instance().info(
                f'LSSKD: branches after {stages.backbone} outputs '
                f'{tuple(self.architecture.backbone.out_indices)} ({how}); '
                f'its classifier reads output(s) {stages.classifier}, as '
                f'without LSSKD.')

    @property
    def num_views(self) -> int:
        """int: Views per image made by the transform set."""
        return self.view_transform.num_views

    @property
    def num_branches(self) -> int:
        """int: Number of auxiliary branches."""
        return self.aux_neck.num_branches

    def classifier_stages(self, stages):
        """Of the backbone's outputs, the ones the classifier read before
        LSSKD asked the backbone for the stages its branches hang on."""
        if self._classifier_positions is None or torch.is_tensor(stages):
            return stages
        return tuple(stages[i] for i in self._classifier_positions)

    def _forward_every_module(self, inputs: torch.Tensor) -> tuple:
        """The classifier, then the auxiliary branches, each named."""
        stages, outputs = super()._forward_every_module(inputs)
        features = run_named('model.aux_neck', self.aux_neck, stages,
                             'the backbone gives')
        outputs += list(
            run_named('model.aux_head', self.aux_head, features,
                      'the auxiliary neck gives'))
        if self.loss_feat is not None:
            self._check_feature_sizes(stages, features)
        return stages, outputs

    def _check_feature_sizes(self, stages, features) -> None:
        """Feature consistency pulls every shallower branch's feature
        towards the feature the classifier's neck gives: they need one
        size (a neck that fuses or projects, e.g. HRNet's, changes it)."""
        classifier = self.architecture
        feats = self.classifier_stages(stages)
        if classifier.with_neck:
            feats = classifier.neck(feats)
        last = feats[-1] if isinstance(feats, (tuple, list)) else feats
        size = last.shape[1]
        sizes = [f.shape[-1] for f in features[:-1]]
        if any(s != size for s in sizes):
            raise config_error(
                'model.loss_feat', f'feature consistency compares each '
                f'shallower branch\'s feature (sizes {sizes}) with the '
                f'feature the classifier\'s neck gives (size {size}), and '
                f'they differ', 'Set model.loss_feat=None to train without '
                'it, or hang the branches on stages whose last one gives '
                'the classifier\'s feature (leave out_indices out).')

    def _check_wrapped_classifier(self, stages, input_size) -> None:
        """A dry run on one dummy image, in eval mode (no running statistic
        changes) and without touching any ``.grad``: the classifier's neck
        gets the outputs it got before wrapping, with their shapes, and
        every trainable backbone parameter gets a gradient from the
        classifier or a branch (under DDP an unreached one stops training
        at its second step).

        Raises:
            LSSKDConfigError: Naming what differs, or the parameters no
                loss reaches and the fix.
        """
        backbone = self.architecture.backbone
        was_training = self.training
        self.eval()
        # Which parameters are reached does not depend on the layout, and
        # torch 2.14's CPU convolution backward corrupts the heap for
        # channels-last weights with very few channels (4 in the tests).
        self.to(memory_format=torch.contiguous_format)
        try:
            image = torch.randn(1, 3, *input_size)
            outs, outputs = self._forward_every_module(
                self.view_transform(image))
            read = self.classifier_stages(
                (outs, ) if torch.is_tensor(outs) else tuple(outs))
            got = [tuple(x.shape[1:]) for x in read]
            expected = stages.classifier_shapes
            if got != expected:
                raise config_error(
                    'model.out_indices', f'with the branch stages '
                    f'{tuple(backbone.out_indices)} the classifier reads '
                    f'outputs of shapes {got} from {stages.backbone}, but '
                    f'{expected} without them', 'Leave out_indices out, or '
                    'report the backbone: its outputs depend on which others '
                    'are asked for.')
            params = [(n, p) for n, p in backbone.named_parameters()
                      if p.requires_grad]
            total = sum(x.float().sum() for x in outputs
                        if torch.is_tensor(x))
            grads = torch.autograd.grad(total, [p for _, p in params],
                                        allow_unused=True)
        finally:
            self.train(was_training)
            self._apply_memory_format()
        unreached = [n for (n, _), g in zip(params, grads) if g is None]
        if unreached:
            raise config_error(
                'model.out_indices', f'{len(unreached)} trainable parameters '
                f'of {stages.backbone} get no gradient from the classifier or '
                f'any branch ({", ".join(unreached[:3])}'
                f'{" ..." if len(unreached) > 3 else ""}): they would not '
                f'train, and DDP would stop at the second step', 'Leave '
                'out_indices out so that the branches end at the stage the '
                'classifier reads, or freeze those parameters '
                '(frozen_stages).')

    def compute_losses(self,
                       inputs: torch.Tensor,
                       labels: torch.Tensor,
                       past: PastPredictions,
                       past_weight: torch.Tensor,
                       mixing: Optional[torch.Tensor] = None):
        """One LSSKD training forward: every loss term, logged apart.

        The part can be traced by torch.compile as one graph (see
        :meth:`PSKD.compute_losses`).

        Args:
            inputs (torch.Tensor): Preprocessed images, (B, C, H, W).
            labels (torch.Tensor): Their labels, (B, ).
            past (PastPredictions): The store's rows of the batch.
            past_weight (torch.Tensor): Weight of each past prediction in
                the targets, (B, ): ``alpha_t`` where one exists, else 0.
            mixing (torch.Tensor, optional): The batch's mixing matrix
                (B, B), None if not mixed. A rotation of a mixed image is
                the same mix of its sources' rotations, so every view's
                joint targets are mixed with it too. Defaults to None.

        Returns:
            tuple: The loss dict (``loss_cls``, ``loss_hier``, ``loss_kl``,
            ``loss_feat`` unless dropped, ``loss_cls_distill`` if set, and
            each branch's training accuracy), and the step's detached
            predictions for the store, one per source image: final
            distributions (B, C) and branch SADs (num_branches, B, K, C * K).
        """
        batch = inputs.size(0)

        # One backbone pass over every view; the unrotated views come first.
        views = self.view_transform(inputs)
        stages = self.architecture.backbone(views)
        # The classifier's neck sees every view, as the backbone's norms do;
        # its head classifies the unrotated views (all of them when it is
        # distilled on all).
        feats = self.classifier_stages(stages)
        if self.architecture.with_neck:
            feats = self.architecture.neck(feats)
        distill_all = (self.loss_cls_distill is not None
                       and self.cls_distill_views == 'all')
        head_rows = views.size(0) if distill_all else batch
        logits = self.architecture.head(tuple(x[:head_rows] for x in feats))
        cls_logits = logits[:batch]

        # The auxiliary branches see every view, with joint labels.
        aux_feats = self.aux_neck(stages)
        # Stacked once, (num_branches, K * B, C * K), for every use below.
        aux_logits = stack_branches(self.aux_head(aux_feats))
        # The deepest branch's class logits of the views the classifier
        # classifies, detached: its teacher and its target's share.
        teacher = None
        if self.loss_cls_distill is not None or self.branch_target_weight:
            teacher = self.view_transform.class_logits(
                aux_logits[-1].detach(), batch, head_rows // batch)
        losses = dict(
            loss_cls=self.loss_cls(
                cls_logits,
                self._classifier_targets(labels, past, past_weight,
                                         teacher, mixing)))
        losses.update(
            self.aux_head.loss(aux_logits,
                               self.view_transform.joint_labels(labels),
                               past.branches,
                               # alpha_t where the branch row was stored.
                               past.branch_written.to(past_weight.dtype) *
                               past_weight.repeat(self.num_views),
                               mixing=mixing))
        if self.loss_cls_distill is not None:
            losses['loss_cls_distill'] = self.loss_cls_distill(
                logits, teacher)

        if self.loss_feat is not None:
            # The feature the classifier reads, on every view.
            last_feat = feats[-1]
            if last_feat.dim() == 4:
                last_feat = F.adaptive_avg_pool2d(last_feat, 1).flatten(1)
            last_feat = last_feat.detach()
            shallower = torch.stack(aux_feats[:-1])
            losses['loss_feat'] = sum_over_parts(
                self.loss_feat, shallower, last_feat.expand_as(shallower),
                self._feat_loss_stacked)

        branch_probs = self.aux_head.probabilities(aux_logits)
        return losses, self._predictions_to_store(
            cls_logits.detach().softmax(dim=1),
            branch_probs.unflatten(1,
                                   (self.num_views, batch)).transpose(1, 2),
            mixing)

    def _classifier_targets(self, labels, past, past_weight, branch_logits,
                            mixing) -> torch.Tensor:
        """The progressive soft target (of the sources, mixed as the images
        were), with the deepest branch's class distribution (from its
        detached ``branch_logits``, unrotated views first, on the image as
        trained) mixed in when ``branch_target_weight > 0``."""
        targets = self._classifier_progressive_targets(labels, past,
                                                       past_weight, mixing)
        if self.branch_target_weight > 0:
            branch_probs = branch_logits[:len(labels)].softmax(dim=1)
            targets = torch.lerp(targets, branch_probs.to(targets.dtype),
                                 self.branch_target_weight)
        return targets

    def _forward(self,
                 inputs: torch.Tensor,
                 data_samples: Optional[List[DataSample]] = None
                 ) -> torch.Tensor:
        """The classifier's logits, as its own tensor mode gives them."""
        return self.architecture.head(self.extract_feat(inputs))

    def _predict(self,
                 inputs: torch.Tensor,
                 data_samples: Optional[List[DataSample]] = None
                 ) -> List[DataSample]:
        """The classifier's predictions, plus each branch's if asked.

        With ``evaluate_branches`` every data sample also gets
        ``branch_scores`` (num_branches, C): each branch's class
        distribution, the average over the K views of the softmax over the
        joint logits of that view's transform (HSSAKD's aggregation).
        """
        results = self.architecture.head.predict(
            self.extract_feat(inputs), data_samples)
        if not self.evaluate_branches:
            return results
        views = self.view_transform(inputs)
        stages = self.architecture.backbone(views)
        logits = self.aux_head(self.aux_neck(stages))
        scores = torch.stack([
            self.view_transform.class_probabilities(x, inputs.size(0))
            for x in logits
        ], dim=1)
        for result, branch_scores in zip(results, scores):
            result.set_field(branch_scores, 'branch_scores')
        return results
