from typing import Optional

import torch
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class BatchedClsDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` with labels moved as one tensor.

    With ``collate_fn=dict(type='default_collate')`` the images already
    arrive stacked, and ``ClsDataPreprocessor`` copies and normalises them
    as one batch; it still splits the labels back into one slice per data
    sample with one operation each (``tensor_split``), so a step's work on
    the host grows with the batch. Here every sample's single hard label is
    gathered on the host, copied to the device once and handed back to the
    samples as views of that copy made by one ``split``. Copies are
    non-blocking: from the loader's page-locked memory a GPU does not wait
    for them.

    Everything else (``pseudo_collate`` lists, ``gt_score``, multi-label
    samples, one-hot labels, batch augments such as Mixup and CutMix) takes
    ``ClsDataPreprocessor``'s path unchanged.

    Args:
        non_blocking (bool): Whether the copies to the device are
            asynchronous. Defaults to True.
        **kwargs: The arguments of ``ClsDataPreprocessor`` (``mean``,
            ``std``, ``to_rgb``, ``num_classes``, ``batch_augments``, ...).
    """

    def __init__(self, non_blocking: Optional[bool] = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self._non_blocking = non_blocking

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise the images as ``ClsDataPreprocessor`` does, and move
        the batch's hard labels with one copy.

        Args:
            data (dict): A batch from the data loader: ``inputs`` and
                ``data_samples``.
            training (bool): Whether batch augments apply.

        Returns:
            dict: ``inputs`` and ``data_samples``, as the model takes them.
        """
        samples = data.get('data_samples')
        if not self._one_label_each(data['inputs'], samples, training):
            return super().forward(data, training)
        inputs = super().forward(dict(inputs=data['inputs']),
                                 training)['inputs']
        labels = torch.cat([sample.gt_label for sample in samples])
        if len(labels) != len(samples):  # a sample with several labels
            return super().forward(data, training)
        labels = labels.to(self.device, non_blocking=self._non_blocking)
        for sample, label in zip(samples, labels.split(1)):
            sample.set_field(label, 'gt_label', dtype=torch.Tensor)
        return dict(inputs=inputs, data_samples=samples)

    def _one_label_each(self, inputs, samples, training: bool) -> bool:
        """Whether the batch is stacked, with hard labels only, and nothing
        that ``ClsDataPreprocessor`` turns into scores."""
        return (torch.is_tensor(inputs) and bool(samples)
                and isinstance(samples[0], DataSample)
                and 'gt_label' in samples[0] and 'gt_score' not in samples[0]
                and not self.to_onehot
                and not (training and self.batch_augments is not None))
