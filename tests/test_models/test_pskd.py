import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_CLASSES, tiny_architecture
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionStore
from mmlsskd.utils import LSSKDConfigError


def build():
    torch.manual_seed(0)
    model = MODELS.build(
        dict(type='PSKD', architecture=tiny_architecture()))
    model.attach_past_predictions(
        PastPredictionStore(6, NUM_CLASSES, model.num_views,
                            model.num_branches))
    return model


def test_progressive_target_loss_by_hand():
    model = build()
    inputs = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 4, 2])
    indices = torch.tensor([5, 0, 3])
    samples = [
        DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(y))
        for i, y in zip(indices, labels)
    ]
    store = model._past_predictions
    past = torch.softmax(torch.randn(NUM_CLASSES), 0)
    store.final[5] = past
    store.written_epoch[5] = 0  # only the first sample has a past one
    model.alpha = 0.4

    losses = model.loss(inputs, samples)
    assert set(losses) == {'loss_cls'}

    logits = model.architecture(inputs, mode='tensor')
    targets = F.one_hot(labels, NUM_CLASSES).float()
    targets[0] = 0.6 * targets[0] + 0.4 * past
    expected = -(targets * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(losses['loss_cls'], expected, atol=1e-6)

    idx, final, branches = model.pop_step_predictions()
    assert torch.equal(idx, indices)
    assert torch.allclose(final, logits.softmax(1)) and not final.requires_grad
    assert branches.shape == (0, 3, 1, NUM_CLASSES)
    store.update(idx, final, branches, epoch=0)
    assert bool((store.written_epoch[indices] == 0).all())


def test_pskd_keeps_only_the_classifier():
    model = build()
    assert model.num_branches == 0 and model.num_views == 1
    assert {k.split('.')[0] for k in model.state_dict()} == {'architecture'}


def test_uniform_past_prediction_is_ramped_label_smoothing():
    """The ablation trains on (1 - a) * onehot + a / C where a past
    prediction exists, and still records the classifier's own."""
    torch.manual_seed(0)
    model = MODELS.build(dict(type='PSKD', architecture=tiny_architecture(),
                              past_prediction='uniform'))
    model.attach_past_predictions(PastPredictionStore(6, NUM_CLASSES, 1, 0))
    store = model._past_predictions
    store.final[1] = torch.softmax(torch.randn(NUM_CLASSES), 0)
    store.written_epoch[1] = 0
    model.alpha = 0.5
    inputs, labels = torch.randn(2, 3, 32, 32), torch.tensor([3, 1])
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
        for i, y in zip((1, 2), labels)
    ]
    loss = model.loss(inputs, samples)['loss_cls']
    logits = model.architecture(inputs, mode='tensor')
    targets = F.one_hot(labels, NUM_CLASSES).float()
    targets[0] = 0.5 * targets[0] + 0.5 / NUM_CLASSES  # sample 1 only
    expected = -(targets * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(model.pop_step_predictions()[1], logits.softmax(1))

    with pytest.raises(LSSKDConfigError, match="past_prediction.*'uniform'"):
        MODELS.build(dict(type='PSKD', architecture=tiny_architecture(),
                          past_prediction='smooth'))
