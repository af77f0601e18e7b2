import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from mmrazor.models.algorithms import BaseAlgorithm
from torch import nn

from ...structures import PastPredictions
from ...utils.errors import config_error
from ..utils import (MixingRecorder, build_settings_error, dominant_rows,
                     head_fix, mix_rows, progressive_targets, record_mixing,
                     run_named, with_classifier_augments)
from ..utils.finite_losses import check_finite_losses
from ..utils.loss_config import check_loss_cfg


@MODELS.register_module()
class PSKD(BaseAlgorithm):
    """Progressive self-knowledge distillation (PS-KD).

    Implementation of `Self-Knowledge Distillation with Progressive
    Refinement of Targets <https://arxiv.org/abs/2006.12000>`_. The
    classifier learns from ``(1 - alpha_t) * onehot(y) + alpha_t * p_prev``,
    ``p_prev`` its own prediction for the same sample in the previous epoch;
    :class:`PastPredictionHook` keeps those predictions and ramps
    ``alpha_t``. It is LSSKD's final-classifier target on its own, the
    PS-KD baseline of the LSSKD paper, and the base class of :class:`LSSKD`.

    Args:
        architecture (dict): The mmpretrain classifier (``ImageClassifier``
            -like: ``backbone``, ``neck``, ``head``). A config without a
            registry scope is built in mmpretrain's.
        loss_cls (dict): Loss of the classifier against its progressive
            soft targets; it replaces the head's own loss during training.
            Defaults to ``dict(type='CrossEntropyLoss', use_soft=True)``.
        channels_last (bool): Whether to keep the convolution weights, and
            so the activations, in the channels-last memory format. It is
            set at build time, before a DDP wrapper records the weights'
            layout. Defaults to False.
        compile_losses (dict, optional): ``torch.compile`` options for the
            training forward and its losses (:meth:`compute_losses`, which
            traces as one graph), e.g. ``dict(mode='reduce-overhead')`` for
            CUDA graphs on a GPU. Unlike mmengine's ``compile``, which
            compiles the whole ``train_step`` with the backward and the
            optimizer step, it leaves those eager. None runs everything
            eagerly. Defaults to None.
        past_prediction (str): ``'own'``: the sample's past prediction, as
            PS-KD. ``'uniform'``: an ablation that puts the uniform
            distribution in its place, so that the target is label smoothing
            ramped as ``alpha_t``: it tells what the past predictions add
            beyond the mass they move off the label. Defaults to ``'own'``.
        data_preprocessor (dict | nn.Module, optional): A dict without
            ``type`` (as mmpretrain configs write it) becomes a
            ``ClsDataPreprocessor``. None takes the classifier's.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 architecture: Union[dict, BaseModel],
                 loss_cls: dict = dict(
                     type='CrossEntropyLoss', use_soft=True),
                 channels_last: bool = False,
                 compile_losses: Optional[dict] = None,
                 past_prediction: str = 'own',
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        name = type(self).__name__
        if past_prediction not in ('own', 'uniform'):
            raise config_error(
                'past_prediction', f"must be 'own' or 'uniform', got "
                f'{past_prediction!r}', "'own' is PS-KD; 'uniform' is its "
                'label-smoothing ablation.')
        if not isinstance(architecture, dict):
            raise config_error(
                'architecture', f'{name} needs the classifier as a config '
                f'dict, got {type(architecture).__name__}',
                'Pass its config, e.g. architecture=_base_.model.')
        architecture = copy.deepcopy(architecture)
        if '.' not in architecture.get('type', ''):
            architecture.setdefault('_scope_', 'mmpretrain')
        if 'backbone' not in architecture or 'head' not in architecture:
            raise config_error(
                'architecture', f'{name} wraps an ImageClassifier-like model '
                f'with a backbone and a head, but the config has keys '
                f'{sorted(architecture)}', "Wrap an mmpretrain "
                "dict(type='ImageClassifier', backbone=..., head=...).")
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type',
                                         'mmpretrain.ClsDataPreprocessor')
        data_preprocessor = with_classifier_augments(data_preprocessor,
                                                     architecture, name)
        try:
            super().__init__(architecture, data_preprocessor, init_cfg)
        except AssertionError as error:
            # mmpretrain's backbones (and its batch augments) check their
            # settings with bare asserts.
            raise build_settings_error(architecture['backbone'],
                                       error) from error

        self.num_classes = getattr(self.architecture.head, 'num_classes',
                                   None)
        if self.num_classes is None:
            raise config_error(
                'architecture.head', f'{name} reads the number of classes '
                f'from the head, but {type(self.architecture.head).__name__} '
                f'has no num_classes', 'Use a head such as LinearClsHead.')
        # The targets of a mixed image need its sources and their shares.
        record_mixing(self.data_preprocessor, self.num_classes)
        check_loss_cfg('loss_cls', loss_cls)
        self.loss_cls = MODELS.build(loss_cls)

        # Set by PastPredictionHook; plain attributes, not module state, so
        # the store never enters the model's state dict or DDP's buffers.
        self.alpha = 0.0
        self.past_prediction = past_prediction
        self._past_predictions = None
        self._step_predictions = None
        # Where training is, for error messages; set by the hook.
        self.step_context = 'an unknown step'
        self._unchecked_losses = None
        self.channels_last = channels_last
        self._apply_memory_format()
        # Compiled unbound, so that a deep copy of the model (an EMA hook
        # makes one) runs it on its own weights, not on these.
        self._compute_losses = type(self).compute_losses
        if compile_losses is not None:
            if not isinstance(compile_losses, dict):
                raise config_error(
                    'compile_losses', f'must be a dict of torch.compile '
                    f'options or None, got {compile_losses!r}',
                    "Use e.g. compile_losses=dict(mode='reduce-overhead').")
            self._compute_losses = torch.compile(self._compute_losses,
                                                 **compile_losses)

    def extract_feat(self, inputs: torch.Tensor, stage: str = 'neck'):
        """The deployed classifier's features, as mmpretrain's
        ``ImageClassifier.extract_feat`` gives them, so that tools written
        for mmpretrain classifiers (``get_flops.py``, feature
        visualisation) measure the classifier that is exported.

        The wrapped backbone may return more stages than the exported one
        (LSSKD's branches hang on them); the neck gets only the ones it got
        before wrapping (:meth:`classifier_stages`).

        Args:
            inputs (torch.Tensor): Images, (N, C, H, W).
            stage (str): ``'backbone'``, ``'neck'`` or ``'pre_logits'``.
                Defaults to ``'neck'``.

        Returns:
            tuple | torch.Tensor: The features of that stage.
        """
        classifier = self.architecture
        feats = self.classifier_stages(classifier.backbone(inputs))
        if stage == 'backbone':
            return feats
        if getattr(classifier, 'with_neck', False):
            feats = classifier.neck(feats)
        if stage == 'neck':
            return feats
        if stage == 'pre_logits':
            return classifier.head.pre_logits(feats)
        raise config_error(
            'extract_feat', f"stage must be 'backbone', 'neck' or "
            f"'pre_logits', got {stage!r}", "Use stage='neck'.")

    def classifier_stages(self, stages):
        """Of the backbone's outputs, the ones the classifier's neck reads:
        all of them here (PS-KD asks the backbone for nothing more);
        :class:`LSSKD` selects those the backbone returned before it
        added the stages its branches hang on.

        Args:
            stages (torch.Tensor | tuple[torch.Tensor]): The backbone's
                outputs.

        Returns:
            torch.Tensor | tuple[torch.Tensor]: What the neck reads.
        """
        return stages

    def check_forward(self, inputs: torch.Tensor) -> None:
        """Run the model once on ``inputs`` (a preprocessed batch), without
        gradients and in eval mode, so that a neck or head that does not fit
        what it receives fails before the first step, named, instead of
        inside it as a bare shape error.

        Raises:
            LSSKDConfigError: Naming the module that failed, what it
                received and what to change.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                self._forward_every_module(inputs)
                self._check_losses(inputs)
        finally:
            self.train(was_training)

    def _check_losses(self, inputs: torch.Tensor) -> None:
        """The training losses on the dry run's batch (labels 0, no past
        prediction): everything the first step computes before its
        backward."""
        batch, num_rows = inputs.size(0), inputs.size(0) * self.num_views
        joint = self.num_classes * self.num_views
        past = PastPredictions(
            final=inputs.new_zeros(batch, self.num_classes),
            branches=inputs.new_zeros(self.num_branches, num_rows, joint),
            written=torch.zeros(batch, dtype=torch.bool,
                                device=inputs.device),
            branch_written=torch.zeros(num_rows, dtype=torch.bool,
                                       device=inputs.device))
        labels = torch.zeros(batch, dtype=torch.long, device=inputs.device)
        try:
            type(self).compute_losses(
                self, inputs, labels, past, inputs.new_zeros(batch),
                torch.eye(batch, device=inputs.device)
                if self.mixes_batches else None)
        except RuntimeError as error:
            raise config_error(
                'model', f'the training losses fail on what the modules '
                f'give ({error})', 'Check that every loss term\'s inputs '
                'fit (loss_cls on the head\'s logits; for LSSKD also the '
                'branch losses).') from error

    def _forward_every_module(self, inputs: torch.Tensor) -> tuple:
        """The classifier's backbone, neck and head on ``inputs``, each
        failure named.

        Returns:
            tuple: The backbone's outputs, and the list of every output the
            training losses are computed from (here the logits).
        """
        classifier = self.architecture
        stages = classifier.backbone(inputs)
        features = self.classifier_stages(stages)
        if getattr(classifier, 'with_neck', False):
            features = run_named('model.architecture.neck', classifier.neck,
                                 features, 'the backbone gives')
        logits = run_named(
            'model.architecture.head', classifier.head, features,
            'the neck gives' if getattr(classifier, 'with_neck', False) else
            'the backbone gives (there is no neck)',
            fix=head_fix(classifier.head, features))
        return stages, [logits]

    def _apply_memory_format(self) -> None:
        """Put the 4-D weights in channels-last layout if asked (called
        again by subclasses once their own modules exist)."""
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def num_views(self) -> int:
        """int: Views per image whose predictions are stored (none here)."""
        return 1

    @property
    def num_branches(self) -> int:
        """int: Auxiliary branches whose predictions are stored (none)."""
        return 0

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
        """The training losses of a batch.

        The batch is unpacked here, on the host side of the step (labels,
        sample indices checked, the store's rows, ``alpha_t`` folded into a
        weight tensor); :meth:`compute_losses`, compiled when
        ``compile_losses`` is set, computes the losses; the step's detached
        predictions wait for :class:`PastPredictionHook`.

        Args:
            inputs (torch.Tensor): Preprocessed images, (B, C, H, W).
            data_samples (List[DataSample]): Their data samples, with
                ``gt_label`` and ``sample_idx``.

        Returns:
            dict[str, torch.Tensor]: ``loss_cls`` (and, for :class:`LSSKD`,
            every branch term).
        """
        labels, indices, past, past_weight = self._batch_targets_inputs(
            inputs, data_samples)
        losses, predictions = self._compute_losses(self, inputs, labels,
                                                   past, past_weight,
                                                   self._batch_mixing(inputs))
        self._step_predictions = (indices, *predictions)
        return losses

    @property
    def mixes_batches(self) -> bool:
        """bool: Whether the data preprocessor mixes training batches."""
        return isinstance(
            getattr(self.data_preprocessor, 'batch_augments', None),
            MixingRecorder)

    def _batch_mixing(self, inputs: torch.Tensor) -> Optional[torch.Tensor]:
        """The mixing matrix of this batch (B, B), None if it was not
        mixed."""
        if not self.mixes_batches:
            return None
        return self.data_preprocessor.batch_augments.pop_mixing(
            inputs.size(0))

    def compute_losses(self,
                       inputs: torch.Tensor,
                       labels: torch.Tensor,
                       past: PastPredictions,
                       past_weight: torch.Tensor,
                       mixing: Optional[torch.Tensor] = None):
        """The training forward and its losses, from tensors alone.

        The part can be traced by torch.compile as one graph: it reads no
        Python value that changes between steps or epochs (``alpha_t`` is
        inside ``past_weight``) and nothing back from the device.

        Args:
            inputs (torch.Tensor): Preprocessed images, (B, C, H, W).
            labels (torch.Tensor): Their labels, (B, ).
            past (PastPredictions): The store's rows of the batch.
            past_weight (torch.Tensor): Weight of each past prediction in
                the target, (B, ): ``alpha_t`` where one exists, else 0.
            mixing (torch.Tensor, optional): How the batch augments mixed
                the images (B, B): row i the shares of the sources (the
                labels, past rows and weights above) in image i. None: not
                mixed. Defaults to None.

        Returns:
            tuple: The loss dict, and the step's detached predictions for
            the store, one per source image: final distributions (B, C) and
            branch SADs (num_branches, B, K, C * K).
        """
        logits = self.architecture(inputs, mode='tensor')
        targets = self._classifier_progressive_targets(labels, past,
                                                       past_weight, mixing)
        predictions = self._predictions_to_store(
            logits.detach().softmax(dim=1),
            logits.new_zeros(0, len(labels), 1, self.num_classes), mixing)
        return dict(loss_cls=self.loss_cls(logits, targets)), predictions

    def _classifier_progressive_targets(self, labels, past, past_weight,
                                        mixing) -> torch.Tensor:
        """The classifier's progressive targets of the sources, mixed as
        the images were (when they were)."""
        targets = progressive_targets(labels, self.num_classes, past.final,
                                      past_weight)
        return targets if mixing is None else mix_rows(mixing, targets)

    @staticmethod
    def _predictions_to_store(final: torch.Tensor, branches: torch.Tensor,
                              mixing: Optional[torch.Tensor]) -> tuple:
        """Each source image's predictions for the store: its own when
        unmixed, else those of the mixed image it has the largest share in
        (:func:`dominant_rows`); a prediction on a mixture is never split
        between its sources."""
        if mixing is None:
            return final, branches
        rows = dominant_rows(mixing)
        return final[rows], branches[:, rows]

    def _batch_targets_inputs(self, inputs: torch.Tensor,
                              data_samples: List[DataSample]):
        """Labels, sample indices, past predictions and their weights."""
        if self._past_predictions is None:
            raise config_error(
                'custom_hooks', f'{type(self).__name__} needs its past '
                f'predictions, but no PastPredictionHook gave it a store',
                "Add dict(type='PastPredictionHook') to custom_hooks.")
        # PastPredictionHook checked their range on the host.
        labels = torch.cat([s.gt_label for s in data_samples])
        try:
            indices = torch.tensor([s.sample_idx for s in data_samples])
        except AttributeError:
            raise config_error(
                'train_pipeline', f"the data samples carry no 'sample_idx', "
                f'which {type(self).__name__} needs to keep a past '
                f'prediction per training sample', "Keep 'sample_idx' in the "
                'meta_keys of PackInputs.') from None
        if inputs.is_cuda:
            # Page-locked, so that copying them to the GPU does not wait.
            indices = indices.pin_memory()
        past = self._past_predictions.lookup(indices, inputs.device)
        if self.past_prediction == 'uniform':
            past = past._replace(
                final=torch.full_like(past.final, 1 / self.num_classes))
        past_weight = self.alpha * past.written.to(inputs.dtype)
        return labels, indices, past, past_weight

    def parse_losses(self, losses: Dict[str, torch.Tensor]):
        """mmengine's loss parsing; the terms are checked for NaN and
        infinity by :meth:`check_losses_finite` before the optimizer step
        (called with and without DDP, which parses through the module)."""
        loss, log_vars = super().parse_losses(losses)
        self._unchecked_losses = (log_vars, self.step_context)
        return loss, log_vars

    def check_losses_finite(self) -> None:
        """Stop if a loss term of the last parsed step is NaN or infinite.

        :class:`PastPredictionHook` calls it just before the optimizer step,
        so that a NaN never reaches the weights while, on a GPU, its one
        device-to-host read comes after the backward has been queued rather
        than between forward and backward; and again before it writes the
        step's predictions, for steps whose optimizer step did not run
        (gradient accumulation, AMP skipping an overflow).

        Raises:
            NonFiniteLossError: Naming the terms, the step and the last
                checkpoint.
        """
        if self._unchecked_losses is not None:
            log_vars, context = self._unchecked_losses
            self._unchecked_losses = None
            check_finite_losses(log_vars, context)
