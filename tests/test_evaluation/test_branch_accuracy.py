import pytest
import torch
from mmpretrain.registry import METRICS


def sample(scores, label):
    return dict(branch_scores=torch.tensor(scores),
                gt_label=torch.tensor([label]))


def test_top1_of_every_branch_by_hand():
    metric = METRICS.build(dict(type='BranchAccuracy'))
    # Two branches, three classes, four images.
    metric.process(None, [
        sample([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]], 0),
        sample([[0.1, 0.6, 0.3], [0.2, 0.5, 0.3]], 1),
    ])
    metric.process(None, [
        sample([[0.5, 0.4, 0.1], [0.1, 0.1, 0.8]], 2),
        sample([[0.2, 0.2, 0.6], [0.1, 0.3, 0.6]], 2),
    ])
    results = metric.evaluate(4)
    # Branch 1 right on images 1, 2, 4; branch 2 on images 2, 3, 4.
    assert results == {
        'aux/branch1_top1': pytest.approx(75.0),
        'aux/branch2_top1': pytest.approx(75.0)
    }


def test_names_the_missing_switch():
    metric = METRICS.build(dict(type='BranchAccuracy'))
    with pytest.raises(KeyError, match='evaluate_branches=True'):
        metric.process(None, [dict(gt_label=torch.tensor([0]))])
