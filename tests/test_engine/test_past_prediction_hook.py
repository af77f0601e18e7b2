from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionHook
from mmlsskd.utils import LSSKDConfigError


class FakeAlgorithm:
    alpha = None

    def attach_past_predictions(self, store):
        pass


def test_alpha_ramps_as_pskd_code_and_reaches_alpha_T_in_the_last_epoch():
    # PS-KD's code: alpha_t = alpha_T * (t + 1) / T, t the 0-based epoch.
    hook = PastPredictionHook(alpha_T=0.8)
    algorithm = FakeAlgorithm()
    alphas = []
    for epoch in range(4):
        runner = SimpleNamespace(
            epoch=epoch,
            max_epochs=4,
            model=algorithm,
            message_hub=MessageHub.get_instance('alpha_ramp_test'))
        hook.before_train_epoch(runner)
        alphas.append(algorithm.alpha)
    assert alphas == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert runner.message_hub.get_scalar('train/alpha').current() == \
        pytest.approx(0.8)


@pytest.mark.parametrize('alpha_T', [-0.1, 1.5])
def test_alpha_T_outside_unit_interval_is_rejected(alpha_T):
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        PastPredictionHook(alpha_T=alpha_T)


def test_hook_on_a_plain_classifier_is_explained():
    runner = SimpleNamespace(
        epoch=0, max_epochs=1, model=object(), message_hub=None)
    with pytest.raises(LSSKDConfigError, match="type='LSSKD'"):
        PastPredictionHook().before_train_epoch(runner)


def test_labels_outside_the_head_are_named_before_the_step():
    algorithm = FakeAlgorithm()
    algorithm.num_classes = 5
    runner = SimpleNamespace(
        epoch=0, iter=0, model=algorithm,
        message_hub=MessageHub.get_instance('label_check_test'))
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(label)
        for i, label in enumerate([0, 7])
    ]
    hook = PastPredictionHook()
    # The hook reads the labels on the host, before the data preprocessor
    # moves them (no device synchronisation inside the step).
    with pytest.raises(LSSKDConfigError,
                       match='labels 0..7 do not fit a 5-way classifier'):
        hook.before_train_iter(runner, 0, dict(data_samples=samples))
    samples[1].set_gt_label(4)
    hook.before_train_iter(runner, 0, dict(data_samples=samples))
    assert algorithm.step_context.startswith('epoch 1, iteration 1')
