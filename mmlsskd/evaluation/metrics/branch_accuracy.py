from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.evaluation import Accuracy
from mmpretrain.registry import METRICS


@METRICS.register_module()
class BranchAccuracy(BaseMetric):
    """Top-1 accuracy of every LSSKD auxiliary classifier.

    Reads the ``branch_scores`` that :class:`LSSKD` attaches to its
    predictions when built with ``evaluate_branches=True``, so the
    auxiliary branches can be followed across epochs (the LSSKD paper's
    Figure 6) next to mmpretrain's ``Accuracy`` of the classifier itself.
    Results are named ``aux/branch{s}_top1`` (``s`` from 1, shallowest
    first), in percent.

    Args:
        collect_device (str): Device for collecting results across ranks.
            Defaults to 'cpu'.
        prefix (str, optional): Metric name prefix. Defaults to 'aux'.
    """

    default_prefix: Optional[str] = 'aux'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's branch scores and label."""
        for sample in data_samples:
            if 'branch_scores' not in sample:
                raise KeyError(
                    "BranchAccuracy needs 'branch_scores' in the "
                    'predictions: build LSSKD with evaluate_branches=True.')
            self.results.append(
                dict(
                    scores=sample['branch_scores'].cpu(),
                    label=sample['gt_label'].cpu()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Top-1 of every branch, in percent."""
        scores = torch.stack([r['scores'] for r in results], dim=1)
        labels = torch.cat([r['label'] for r in results])
        return {
            f'branch{s}_top1': float(
                Accuracy.calculate(branch, labels, topk=(1, ))[0][0])
            for s, branch in enumerate(scores, 1)
        }
