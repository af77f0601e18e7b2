import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_CLASSES, ROOT, tiny_architecture, tiny_lsskd
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.flop_counter import FlopCounterMode

from mmlsskd.engine import PastPredictionStore
from mmlsskd.utils import LSSKDConfigError


def batch(size=4, num_samples=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(size, 3, 32, 32, generator=g)
    labels = torch.randint(0, NUM_CLASSES, (size, ), generator=g)
    indices = torch.randperm(num_samples, generator=g)[:size]
    samples = [
        DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(y))
        for i, y in zip(indices, labels)
    ]
    return inputs, samples, labels, indices


def build(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(tiny_lsskd(**kwargs))
    model.attach_past_predictions(
        PastPredictionStore(10, NUM_CLASSES, model.num_views,
                            model.num_branches))
    return model


def test_losses_are_logged_apart_and_finite():
    model = build()
    inputs, samples, _, _ = batch()
    losses = model.loss(inputs, samples)
    assert {'loss_cls', 'loss_hier', 'loss_kl', 'loss_feat'} <= set(losses)
    assert {f'acc_branch{s}' for s in range(1, 5)} <= set(losses)
    assert all(torch.isfinite(v).all() for v in losses.values())


def test_classifier_and_feature_losses_by_hand():
    model = build()
    model.train()
    inputs, samples, labels, indices = batch()
    store = model._past_predictions
    # Give two of the four samples a past final prediction.
    past = torch.softmax(torch.randn(2, NUM_CLASSES), 1)
    store.final[indices[:2]] = past
    store.written_epoch[indices[:2]] = 0
    model.alpha = 0.3

    torch.manual_seed(1)
    losses = model.loss(inputs, samples)

    # Recompute with the same weights; BN sees the same batch in train mode.
    views = torch.cat([torch.rot90(inputs, k, (2, 3)) for k in range(4)])
    stages = model.architecture.backbone(views)
    logits = model.architecture.head(
        model.architecture.neck(tuple(s[:4] for s in stages)))
    target = F.one_hot(labels, NUM_CLASSES).float()
    target[:2] = 0.7 * target[:2] + 0.3 * past
    expected_cls = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(losses['loss_cls'], expected_cls, atol=1e-5)

    last = stages[-1].mean((2, 3))
    feats = model.aux_neck(stages)
    expected_feat = 0.01 * sum(
        ((f - last)**2).sum(1).mean() for f in feats[:-1])
    assert torch.allclose(losses['loss_feat'], expected_feat, rtol=1e-4)


def test_step_predictions_are_detached_and_sample_major():
    model = build()
    inputs, samples, _, indices = batch()
    model.loss(inputs, samples)
    idx, final, branches = model.pop_step_predictions()
    assert torch.equal(idx, indices)
    assert final.shape == (4, NUM_CLASSES) and not final.requires_grad
    assert branches.shape == (4, 4, 4, NUM_CLASSES * 4)
    assert not branches.requires_grad
    assert torch.allclose(branches.sum(-1), torch.ones(4, 4, 4))
    with pytest.raises(RuntimeError):
        model.pop_step_predictions()


def test_gradients_reach_classifier_and_branches():
    model = build()
    inputs, samples, _, _ = batch()
    losses = model.loss(inputs, samples)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name


def test_predict_is_the_plain_classifier():
    model = build()
    model.eval()
    plain = MODELS.build(tiny_architecture())
    plain.load_state_dict(model.architecture.state_dict())
    plain.eval()
    calls = []
    model.aux_neck.register_forward_hook(lambda *a: calls.append('neck'))
    model.aux_head.register_forward_hook(lambda *a: calls.append('head'))

    inputs, samples, _, _ = batch()
    ours = model(inputs, copy.deepcopy(samples), mode='predict')
    theirs = plain(inputs, copy.deepcopy(samples), mode='predict')
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_score, b.pred_score)
        assert torch.equal(a.pred_label, b.pred_label)
    assert torch.equal(
        model(inputs, mode='tensor'), plain(inputs, mode='tensor'))
    assert calls == []


def test_student_checkpoint_is_the_architecture_keys():
    model = build()
    plain = MODELS.build(tiny_architecture())
    student = {
        k[len('architecture.'):]
        for k in model.state_dict() if k.startswith('architecture.')
    }
    assert student == set(plain.state_dict())
    aux = {
        k.split('.')[0]
        for k in model.state_dict() if not k.startswith('architecture.')
    }
    assert aux <= {'aux_neck', 'aux_head', 'data_preprocessor'}
    arch_ptrs = {p.data_ptr() for p in model.architecture.parameters()}
    assert not arch_ptrs & {
        p.data_ptr()
        for n, p in model.named_parameters()
        if not n.startswith('architecture.')
    }


def test_out_indices_and_untyped_data_preprocessor():
    arch = tiny_architecture()
    arch['backbone']['out_indices'] = (3, )
    model = MODELS.build(
        tiny_lsskd(
            architecture=arch,
            out_indices=(1, 2, 3),
            data_preprocessor=dict(mean=[0.] * 3, std=[1.] * 3)))
    assert model.num_branches == 3
    assert type(model.data_preprocessor).__name__ == 'ClsDataPreprocessor'


def test_missing_hook_and_sample_idx_are_explained():
    torch.manual_seed(0)
    model = MODELS.build(tiny_lsskd())
    inputs, samples, _, _ = batch()
    with pytest.raises(LSSKDConfigError, match='PastPredictionHook'):
        model.loss(inputs, samples)
    model = build()
    bare = [DataSample().set_gt_label(1) for _ in range(4)]
    with pytest.raises(LSSKDConfigError, match='sample_idx'):
        model.loss(inputs, bare)


@pytest.mark.parametrize('key', ['num_views', 'num_branches'])
def test_aux_head_that_disagrees_with_the_model_is_rejected(key):
    with pytest.raises(ValueError, match=f'{key}=3'):
        MODELS.build(
            tiny_lsskd(aux_head={'type': 'RotationJointHead', key: 3}))


def test_dropping_the_feature_term():
    model = build(loss_feat=None)
    losses = model.loss(*batch()[:2])
    assert 'loss_feat' not in losses and 'loss_cls' in losses


def test_evaluate_branches_adds_branch_scores_and_keeps_predictions():
    model = build(evaluate_branches=True)
    model.eval()
    inputs, samples, _, _ = batch()
    ours = model(inputs, copy.deepcopy(samples), mode='predict')
    model.evaluate_branches = False
    plain = model(inputs, copy.deepcopy(samples), mode='predict')

    with torch.no_grad():
        views = torch.cat([torch.rot90(inputs, k, (2, 3)) for k in range(4)])
        logits = model.aux_head(
            model.aux_neck(model.architecture.backbone(views)))
    for i, (result, reference) in enumerate(zip(ours, plain)):
        assert torch.equal(result.pred_score, reference.pred_score)
        assert result.branch_scores.shape == (model.num_branches,
                                              NUM_CLASSES)
        # Branch s, class c: mean over views k of softmax_c z[k*B+i, c*K+k].
        expected = torch.stack([
            torch.stack([
                branch[k * len(inputs) + i, k::4].softmax(0)
                for k in range(4)
            ]).mean(0) for branch in logits
        ])
        assert torch.allclose(result.branch_scores, expected, atol=1e-6)
    assert 'branch_scores' not in plain[0]


def test_channels_last_changes_the_layout_not_the_numbers():
    dense, channels_last = build(), build(channels_last=True)
    channels_last.init_weights()  # in place: keeps the layout
    convs = [(n, p) for n, p in channels_last.named_parameters()
             if p.dim() == 4]
    assert len(convs) > 10
    for name, param in convs:
        assert param.is_contiguous(memory_format=torch.channels_last), name
    # In float64, so that the comparison is not about summation order (in
    # float32 the shallow layers' gradients differ by up to 0.5 %, because
    # train-mode BatchNorm on this tiny batch amplifies rounding).
    channels_last.load_state_dict(dense.state_dict())
    inputs, samples, _, _ = batch()
    results = []
    for model in (dense.double(), channels_last.double()):
        losses = model.loss(inputs.double(), samples)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        results.append((losses, dict(model.named_parameters())))
    (losses, params), (cl_losses, cl_params) = results
    assert channels_last.architecture.backbone.conv1.weight.is_contiguous(
        memory_format=torch.channels_last)
    for key, value in losses.items():
        assert torch.allclose(cl_losses[key], value, rtol=1e-10), key
    for name, param in params.items():
        assert torch.allclose(cl_params[name].grad, param.grad,
                              rtol=1e-8, atol=1e-12), name


def test_training_forward_runs_the_backbone_once_over_all_views():
    """Its FLOPs are one backbone pass over the four views, the classifier's
    neck and head on the unrotated slice and the branches on all views:
    never a second pass for the unrotated images."""
    model = build()
    inputs, samples, _, _ = batch()

    def flops(forward) -> int:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            forward()
        return counter.get_total_flops()

    architecture = model.architecture
    views = torch.cat([torch.rot90(inputs, k, (2, 3)) for k in range(4)])
    with torch.no_grad():
        stages = architecture.backbone(views)
    expected = (
        flops(lambda: architecture.backbone(views)) +
        flops(lambda: architecture.head(
            architecture.neck(tuple(s[:len(inputs)] for s in stages)))) +
        flops(lambda: model.aux_head(model.aux_neck(stages))))
    assert expected > 0
    assert flops(lambda: model.loss(inputs, samples)) == expected


MIXUP = dict(augments=dict(type='Mixup', alpha=0.8))


@pytest.mark.parametrize('top_preprocessor', [False, True])
@pytest.mark.parametrize('where', [
    'top', 'architecture preprocessor', 'architecture train_cfg'])
def test_label_mixing_augments_are_honoured_wherever_the_config_puts_them(
        where, top_preprocessor):
    """mmpretrain's Swin, ConvNeXt and DeiT configs put Mixup/CutMix in
    model.train_cfg.augments, which the classifier moves into its batch
    augments; the Runner gives the algorithm the config's top-level
    data_preprocessor (``top_preprocessor``). Wherever they are, the
    training batches are mixed and the algorithm knows how."""
    if where == 'top' and not top_preprocessor:
        pytest.skip('no top-level preprocessor to put them in')
    architecture = tiny_architecture()
    kwargs = {}
    if top_preprocessor:
        # As the CIFAR-100 base gives it (num_classes included or not).
        kwargs['data_preprocessor'] = dict(mean=[0.] * 3, std=[1.] * 3)
    if where == 'top':
        kwargs['data_preprocessor']['batch_augments'] = MIXUP
    elif where == 'architecture preprocessor':
        architecture['data_preprocessor'] = dict(
            type='ClsDataPreprocessor', batch_augments=MIXUP)
    else:
        architecture['train_cfg'] = MIXUP
    model = MODELS.build(tiny_lsskd(architecture=architecture, **kwargs))
    assert model.mixes_batches
    inputs, samples, labels, _ = batch()
    torch.manual_seed(0)
    out = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                  True)
    mixing = model._batch_mixing(out['inputs'])
    assert mixing is not None and not torch.equal(mixing, torch.eye(4))
    scores = torch.stack([s.gt_score for s in out['data_samples']])
    torch.testing.assert_close(scores,
                               mixing @ F.one_hot(labels, NUM_CLASSES).float())
    # Evaluation batches are never mixed.
    out = model.data_preprocessor(dict(inputs=inputs, data_samples=samples),
                                  False)
    assert torch.equal(out['inputs'], inputs)
    assert model._batch_mixing(out['inputs']) is None


def test_mixing_that_a_given_preprocessor_would_drop_is_refused():
    preprocessor = MODELS.build(dict(type='ClsDataPreprocessor'))
    with pytest.raises(LSSKDConfigError,
                       match='model.data_preprocessor: the classifier mixes'):
        MODELS.build(tiny_lsskd(
            architecture=dict(tiny_architecture(), train_cfg=MIXUP),
            data_preprocessor=preprocessor))


def test_an_assert_outside_the_backbone_is_not_blamed_on_it():
    augments = dict(augments=[dict(type='CutMix', alpha=1.0),
                              dict(type='Mixup', alpha=1.0)], probs=[0.5])
    with pytest.raises(LSSKDConfigError,
                       match='RandomBatchAugment refused its settings'):
        MODELS.build(tiny_lsskd(architecture=dict(tiny_architecture(),
                                                  train_cfg=augments)))


def test_build_time_checks_leave_the_random_stream_alone():
    """The stage probe and the wrapped-classifier check build and run
    throwaway modules at build time; a seed must still give the same
    weights, and leave the same random state for training, as building
    the model without them (they once shifted every LSSKD initialisation
    away from the one its seed gave before they existed)."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    from mmlsskd.models.utils.backbone_stages import probe_backbone_stages
    config = ROOT / 'configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py'
    cfg = Config.fromfile(str(config)).model

    def build(model_cfg):
        torch.manual_seed(0)
        model = MODELS.build(model_cfg)
        model.init_weights()
        return model.state_dict(), torch.get_rng_state()

    state = torch.get_rng_state()
    probe_backbone_stages(cfg.architecture.backbone, (32, 32))
    assert torch.equal(torch.get_rng_state(), state)

    checked, checked_rng = build(cfg)
    # out_indices=None skips both checks and keeps the backbone's indices.
    unchecked_cfg = cfg.copy()
    unchecked_cfg.out_indices = None
    unchecked_cfg.architecture.backbone.out_indices = (0, 1, 2)
    unchecked, unchecked_rng = build(unchecked_cfg)
    assert checked.keys() == unchecked.keys()
    for name, value in checked.items():
        assert torch.equal(value, unchecked[name]), name
    assert torch.equal(checked_rng, unchecked_rng)


def test_the_feature_term_pulls_the_branches_never_the_classifier_feature():
    """Feature consistency's target, the feature the classifier reads, is
    detached (METHOD.md): its gradient reaches the shallower branches and
    the backbone stages under them, never the last stage, whose only path
    into the term is that target."""
    model = build()
    inputs, samples, _, _ = batch()
    loss_feat = model.loss(inputs, samples)['loss_feat']
    named = dict(model.named_parameters())
    grads = dict(zip(named, torch.autograd.grad(
        loss_feat, list(named.values()), allow_unused=True)))

    def reached(prefix):
        return any(grads[n] is not None and grads[n].abs().sum() > 0
                   for n in named if n.startswith(prefix))

    backbone = 'architecture.backbone.'
    assert reached(backbone + 'layer1.')
    assert reached('aux_neck.')
    assert not reached(backbone + 'layer4.')
    assert not reached('architecture.head.')


def test_the_step_stores_each_images_own_probabilities():
    """What the store receives is the softmax of the classifier's logits
    on the unrotated image, and of every branch's joint logits on each of
    the image's views (the same weights, recomputed by hand)."""
    model = build()
    model.train()
    inputs, samples, _, _ = batch()
    model.loss(inputs, samples)
    _, final, branches = model.pop_step_predictions()
    views = torch.cat([torch.rot90(inputs, k, (2, 3)) for k in range(4)])
    stages = model.architecture.backbone(views)
    logits = model.architecture.head(model.architecture.neck(stages))
    joint = torch.stack(model.aux_head(model.aux_neck(stages)))
    torch.testing.assert_close(final, logits[:4].softmax(1))
    for image in range(4):
        for view in range(4):
            torch.testing.assert_close(
                branches[:, image, view],
                joint[:, view * 4 + image].softmax(-1))
