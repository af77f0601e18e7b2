"""What the store holds for the branches, and how it comes back into the
branch losses, with sizes that no axis can stand in for another: 3
branches, 5 images, 4 views, 7 classes (28 joint labels), 9 samples."""
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, tiny_architecture
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionStore

BRANCHES, IMAGES, VIEWS, CLASSES, SAMPLES = 3, 5, 4, 7, 9
JOINT = CLASSES * VIEWS
INDICES = [8, 2, 5, 0, 6]


def build():
    torch.manual_seed(0)
    architecture = tiny_architecture(CLASSES)
    architecture['backbone']['out_indices'] = (3, )  # the classifier's
    model = MODELS.build(
        dict(type='LSSKD', architecture=architecture, out_indices=(1, 2, 3),
             aux_neck=dict(type='AuxiliaryBranchNeck', input_size=32)))
    assert (model.num_branches, model.num_views) == (BRANCHES, VIEWS)
    store = PastPredictionStore(SAMPLES, CLASSES, VIEWS, BRANCHES)
    model.attach_past_predictions(store)
    return model.train(), store


def batch():
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(IMAGES, 3, 32, 32, generator=g)
    labels = torch.tensor([3, 6, 0, 6, 1])
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(int(y))
        for i, y in zip(INDICES, labels)
    ]
    return inputs, labels, samples


def branch_logits(model, inputs):
    """Every branch's joint logits of the views, as the training forward
    computes them (train mode: BN normalises with this batch's statistics,
    so the recomputation is exact)."""
    views = torch.cat([torch.rot90(inputs, k, (2, 3)) for k in range(VIEWS)])
    with torch.no_grad():
        return model.aux_head(model.aux_neck(
            model.architecture.backbone(views)))


def test_the_store_keeps_each_samples_own_row_of_each_view():
    model, store = build()
    inputs, _, samples = batch()
    model.loss(inputs, samples)
    indices, final, branches = model.pop_step_predictions()
    assert branches.shape == (BRANCHES, IMAGES, VIEWS, JOINT)
    store.update(indices, final, branches, epoch=0)

    logits = branch_logits(model, inputs)
    for s in range(BRANCHES):
        for i, sample in enumerate(INDICES):
            for k in range(VIEWS):
                # Views are stacked view-major: row k * B + i.
                expected = logits[s][k * IMAGES + i].softmax(0)
                torch.testing.assert_close(store.branches[s, sample, k],
                                           expected, rtol=1e-5, atol=1e-6)
    # And the lookup hands them back in the model's row order.
    past = store.lookup(torch.tensor(INDICES))
    for s in range(BRANCHES):
        torch.testing.assert_close(past.branches[s],
                                   torch.stack(list(logits[s])).softmax(1),
                                   rtol=1e-5, atol=1e-6)


def test_the_next_steps_branch_losses_by_hand():
    model, store = build()
    inputs, labels, samples = batch()
    g = torch.Generator().manual_seed(2)
    store.branches.copy_(
        torch.rand(BRANCHES, SAMPLES, VIEWS, JOINT, generator=g).softmax(-1))
    written = torch.tensor([8, 5, 6])  # samples 2 and 0 have none
    store.written_epoch[written] = 0
    model.alpha = 0.35

    losses = model.loss(inputs, samples)

    logits = branch_logits(model, inputs)
    hier = 0
    for s in range(BRANCHES):
        for k in range(VIEWS):
            for i, sample in enumerate(INDICES):
                weight = 0.35 if sample in written.tolist() else 0.0
                target = (1 - weight) * F.one_hot(
                    labels[i] * VIEWS + k, JOINT).float() + \
                    weight * store.branches[s, sample, k]
                row = logits[s][k * IMAGES + i]
                hier += -(target * F.log_softmax(row, 0)).sum() / (
                    VIEWS * IMAGES)
    torch.testing.assert_close(losses['loss_hier'], hier, rtol=1e-5,
                               atol=1e-5)
    tau = 3.0
    teacher = F.softmax(logits[-1] / tau, 1)
    kl = sum((teacher * (teacher.log() - F.log_softmax(x / tau, 1))).sum() *
             tau**2 / (VIEWS * IMAGES) for x in logits[:-1])
    torch.testing.assert_close(losses['loss_kl'], kl, rtol=1e-5, atol=1e-5)


def test_branch_accuracies_are_each_branchs_own():
    model, _ = build()
    joint = torch.tensor([0, 5, 9, 13, 27, 4])
    right = F.one_hot(joint, JOINT).float()
    wrong = F.one_hot((joint + 1) % JOINT, JOINT).float()
    half = torch.cat([right[:3], wrong[3:]])
    accuracies = model.aux_head.accuracies([right, half, wrong], joint)
    assert [float(a) for a in accuracies] == [100.0, 50.0, 0.0]


@pytest.mark.parametrize('ablation, dropped', [
    ('no-kl', {'loss_kl'}),
    ('no-feat', {'loss_feat'}),
    ('no-hier', set()),
    ('no-past', set()),
])
def test_each_ablation_keeps_its_own_terms(ablation, dropped):
    """Each shipped ablation config logs the terms it keeps; no-hier trains
    the branches on hard joint labels and no-past trains with alpha 0."""
    cfg = Config.fromfile(str(
        ROOT / f'configs/lsskd/lsskd-{ablation}_resnet20_1xb64-240e_'
        'cifar100.py'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    store = PastPredictionStore(SAMPLES, 100, model.num_views,
                                model.num_branches)
    store.branches.fill_(1 / (100 * VIEWS))
    store.final.fill_(0.01)
    store.written_epoch.fill_(0)
    model.attach_past_predictions(store)
    hook = next(h for h in cfg.custom_hooks
                if h['type'] == 'PastPredictionHook')
    model.alpha = hook['alpha_T']
    inputs, _, samples = batch()
    losses = model.loss(inputs, samples)
    terms = {k for k in losses if k.startswith('loss')}
    assert terms == {'loss_cls', 'loss_hier', 'loss_kl',
                     'loss_feat'} - dropped
    if ablation == 'no-past':
        assert hook['alpha_T'] == 0
    if ablation in ('no-hier', 'no-past'):
        # The branch targets are the hard joint labels.
        hard = model.aux_head.loss(
            branch_logits(model, inputs),
            model.view_transform.joint_labels(
                torch.cat([s.gt_label for s in samples])),
            torch.zeros(model.num_branches, VIEWS * IMAGES, 100 * VIEWS),
            torch.zeros(VIEWS * IMAGES))['loss_hier']
        torch.testing.assert_close(losses['loss_hier'], hard, rtol=1e-5,
                                   atol=1e-5)
