import copy
from typing import Callable, Optional, Tuple, Union

import torch
from torch import nn

from ...utils.errors import config_error


class MixingRecorder:
    """A data preprocessor's batch augments (mmpretrain's
    ``RandomBatchAugment``: Mixup, CutMix, ResizeMix, ...), run unchanged,
    with how they mixed the batch kept for the targets.

    PS-KD and LSSKD build a mixed image's targets from its sources' own
    targets (their labels and past predictions), so they must know which
    images each mixed image is made of, and in which shares. The augments
    return only the mixed images and labels; rather than re-implement
    each of them (and every augment a user registers) to expose its
    pairing, the recorder appends one identity column per image to the
    scores it hands over. Every augment that mixes labels mixes those
    columns with the same weights, so they come back as the mixing matrix
    ``M`` (B, B): ``mixed_scores = M @ scores``, row i the shares of the
    batch's images in mixed image i (the identity when a batch is not
    mixed). The first mixed batch checks that the label columns follow that
    rule, so an augment that changes labels in any other way is named
    instead of mis-targeted.

    Args:
        batch_augments (Callable): ``(inputs, scores) -> (inputs, scores)``,
            as ``ClsDataPreprocessor.batch_augments``.
    """

    def __init__(self, batch_augments: Callable) -> None:
        self.batch_augments = batch_augments
        self._mixing = None
        self._checked = False

    def __call__(self, inputs: torch.Tensor,
                 scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mix the batch as the augments do, and keep the mixing matrix.

        Args:
            inputs (torch.Tensor): Images, (B, C, H, W).
            scores (torch.Tensor): Their label scores, (B, num_classes).

        Returns:
            tuple: The mixed images and label scores, as the augments give
            them.
        """
        batch, num_classes = scores.shape
        identity = torch.eye(batch, dtype=torch.float32, device=scores.device)
        mixed_inputs, mixed = self.batch_augments(
            inputs, torch.cat([scores.float(), identity], dim=1))
        mixed_scores, mixing = mixed.split([num_classes, batch], dim=1)
        if not self._checked:
            self._check_linear(scores, mixed_scores, mixing, identity)
        self._mixing = mixing
        return mixed_inputs, mixed_scores

    def _check_linear(self, scores, mixed_scores, mixing, identity) -> None:
        """Once, on the first batch that was mixed: the augments mixed the
        labels by shares of images (a read back from the device each step
        until then). It runs inside the training step's autocast (--amp),
        so the product is :func:`mix_rows`'s, in float32."""
        if torch.equal(mixing, identity):
            return  # not mixed (e.g. RandomBatchAugment drew no augment)
        self._checked = True
        name = getattr(self.batch_augments, '__name__',
                       type(self.batch_augments).__name__)
        if not (torch.allclose(mixing.sum(dim=1), mixing.new_ones(1),
                               atol=1e-5) and bool((mixing >= 0).all())
                and torch.allclose(mixed_scores,
                                   mix_rows(mixing, scores.float()),
                                   atol=1e-5)):
            raise config_error(
                'batch_augments', f'{name} changes the label scores in a '
                f'way other than mixing images\' labels by shares '
                f'(mixed = M @ scores, every row of M non-negative and '
                f'summing to 1), so the progressive targets of a mixed '
                f'image cannot be formed from its sources\'', 'Use '
                "mmpretrain's Mixup, CutMix or ResizeMix, or an augment "
                'that mixes labels as they do.')

    def pop_mixing(self, batch_size: int) -> Optional[torch.Tensor]:
        """The mixing matrix of the batch mixed last, once.

        Args:
            batch_size (int): Images in the batch the caller trains on.

        Returns:
            torch.Tensor | None: (B, B), or None if no batch was mixed since
            the last call (not in training, or the augments did not run).
        """
        mixing, self._mixing = self._mixing, None
        if mixing is not None and mixing.size(0) != batch_size:
            raise RuntimeError(
                f'The batch augments last mixed a batch of '
                f'{mixing.size(0)} images, but the losses are computed on '
                f'{batch_size}: the data preprocessor and the loss must '
                f'see the same batch.')
        return mixing


def mix_rows(mixing: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets of mixed images: row i is ``sum_j mixing[i, j] targets[j]``.

    Computed in the targets' precision even under autocast (a bf16 matmul
    would round the targets).

    Args:
        mixing (torch.Tensor): The mixing matrix, (B, B).
        targets (torch.Tensor): The sources' targets, (..., B, C).

    Returns:
        torch.Tensor: The mixed images' targets, (..., B, C).
    """
    with torch.autocast(targets.device.type, enabled=False):
        return torch.matmul(mixing.to(targets.dtype), targets)


def dominant_rows(mixing: torch.Tensor) -> torch.Tensor:
    """For every source image, the mixed image it has the largest share
    in (ties go to the image itself): where its prediction for the store
    is read (see docs/mixing.md, "Batch mixing").

    Args:
        mixing (torch.Tensor): The mixing matrix, (B, B).

    Returns:
        torch.Tensor: Row indices, (B, ); ``arange(B)`` when unmixed.
    """
    own = torch.eye(len(mixing), dtype=mixing.dtype, device=mixing.device)
    return (mixing + 1e-6 * own).argmax(dim=0)


def with_classifier_augments(data_preprocessor: Union[dict, nn.Module, None],
                             architecture: dict,
                             owner: str) -> Union[dict, nn.Module, None]:
    """The algorithm's data preprocessor, with the batch augments of the
    classifier it wraps.

    ``ImageClassifier`` moves its ``train_cfg`` (``augments``, ``probs``;
    mmpretrain's recipes put Mixup and CutMix there) into its own data
    preprocessor, unless that one has ``batch_augments`` of its own. An
    mmrazor algorithm given a preprocessor of its own (the Runner gives it
    the config's top-level one) would drop them; they are moved into that
    one the same way. None keeps the classifier's preprocessor, augments
    included.

    Args:
        data_preprocessor (dict | nn.Module, optional): The algorithm's.
        architecture (dict): The classifier config.
        owner (str): The algorithm's name, for the message.

    Returns:
        dict | nn.Module | None: The preprocessor to build the algorithm
        with.

    Raises:
        LSSKDConfigError: If a preprocessor module without batch augments
            would drop the classifier's.
    """
    preprocessor = architecture.get('data_preprocessor')
    if isinstance(preprocessor, dict) and preprocessor.get('batch_augments'):
        augments = preprocessor['batch_augments']
    else:
        augments = architecture.get('train_cfg')
    if not augments or data_preprocessor is None:
        return data_preprocessor
    if isinstance(data_preprocessor, dict):
        data_preprocessor = dict(data_preprocessor)
        # A copy: RandomBatchAugment appends to the probs list it is given,
        # and the classifier builds its own from the same config.
        data_preprocessor.setdefault('batch_augments',
                                     copy.deepcopy(augments))
        data_preprocessor.setdefault('num_classes',
                                     architecture['head'].get('num_classes'))
        return data_preprocessor
    if getattr(data_preprocessor, 'batch_augments', None) is None:
        raise config_error(
            'model.data_preprocessor', f'the classifier mixes its batches '
            f'({augments}), but the data preprocessor module given to '
            f'{owner} has no batch_augments, so the mixing would be lost',
            'Pass the data preprocessor as a config dict, or build the '
            'module with those batch_augments.')
    return data_preprocessor


def record_mixing(data_preprocessor: nn.Module, num_classes: int) -> None:
    """Wrap the preprocessor's batch augments, if any, in a
    :class:`MixingRecorder`, and give it the number of classes its one-hot
    labels need when it has none (a classifier's own preprocessor built
    without ``num_classes`` would stop at the first mixed batch)."""
    augments = getattr(data_preprocessor, 'batch_augments', None)
    if augments is None or isinstance(augments, MixingRecorder):
        return
    data_preprocessor.batch_augments = MixingRecorder(augments)
    if getattr(data_preprocessor, 'num_classes', 0) is None:
        data_preprocessor.num_classes = num_classes
