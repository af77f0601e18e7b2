"""Batch mixing (Mixup, CutMix) with PS-KD and LSSKD: the mixing matrix,
every target rule by hand, what the store records, and where the configs
put the augments."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import NUM_CLASSES, tiny_architecture, tiny_lsskd
from mmpretrain.models.utils.batch_augments import RandomBatchAugment
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionStore
from mmlsskd.models.utils import MixingRecorder, dominant_rows, mix_rows
from mmlsskd.utils import LSSKDConfigError

CUTMIX = dict(augments=[dict(type='CutMix', alpha=1.0)])
MIXUP = dict(augments=[dict(type='Mixup', alpha=0.8)])


def seeded(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


@pytest.mark.parametrize('augment', [
    dict(type='Mixup', alpha=0.8),
    dict(type='CutMix', alpha=1.0),
    dict(type='ResizeMix', alpha=1.0),
])
def test_the_mixing_matrix_is_the_pairing_the_augment_drew(augment):
    """Run the augment once through the recorder and once bare with the
    same random draws: the recorder returns the augment's own images and
    labels, and its matrix is the pairing the augment drew (what it makes
    of one-hot rows that name the images)."""
    batch = 6
    inputs = torch.randn(batch, 3, 16, 16)
    scores = F.one_hot(torch.arange(batch) % 3, 3).float()
    recorder = MixingRecorder(RandomBatchAugment(augment))
    seeded(3)
    mixed_inputs, mixed_scores = recorder(inputs.clone(), scores)
    mixing = recorder.pop_mixing(batch)
    seeded(3)
    bare_inputs, pairing = RandomBatchAugment(augment)(inputs.clone(),
                                                       torch.eye(batch))
    torch.testing.assert_close(mixed_inputs, bare_inputs)
    torch.testing.assert_close(mixing, pairing)
    torch.testing.assert_close(mixed_scores, pairing @ scores)
    # lam * I + (1 - lam) * P for a permutation P: every image is used
    # with a total share of 1, in at most two mixed images.
    ones = torch.ones(batch)
    torch.testing.assert_close(mixing.sum(0), ones)
    torch.testing.assert_close(mixing.sum(1), ones)
    assert ((mixing > 0).sum(1) <= 2).all()
    assert not torch.equal(mixing, torch.eye(batch))
    # Once popped, nothing is left for a later step.
    assert recorder.pop_mixing(batch) is None


def test_an_unmixed_batch_gives_the_identity():
    # probs=0 leaves only "no augment" (mmpretrain appends it).
    recorder = MixingRecorder(RandomBatchAugment(**CUTMIX, probs=[0.0]))
    scores = torch.eye(4)[[0, 1, 1, 2]]
    inputs = torch.randn(4, 3, 8, 8)
    out, mixed = recorder(inputs, scores)
    assert torch.equal(recorder.pop_mixing(4), torch.eye(4))
    assert torch.equal(out, inputs) and torch.equal(mixed, scores)


def test_an_augment_that_is_not_a_mix_is_named():
    """Checked on the first batch that was mixed: a batch left unmixed
    (RandomBatchAugment drawing no augment) proves nothing."""
    calls = []

    def smooth(inputs, scores):
        calls.append(len(inputs))
        if len(calls) == 1:  # the first batch left as it is
            return inputs, scores
        return inputs, scores * 0.9 + 0.1 / scores.size(1)

    recorder = MixingRecorder(smooth)
    recorder(torch.randn(3, 3, 4, 4), torch.eye(3))
    with pytest.raises(LSSKDConfigError,
                       match='batch_augments: smooth changes the label'):
        recorder(torch.randn(3, 3, 4, 4), torch.eye(3))


def test_mix_rows_and_dominant_rows_by_hand():
    # Image 0 = 0.7 * source 0 + 0.3 * source 2, image 1 unmixed,
    # image 2 = 0.7 * source 2 + 0.3 * source 0.
    mixing = torch.tensor([[0.7, 0.0, 0.3], [0.0, 1.0, 0.0],
                           [0.3, 0.0, 0.7]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8]])
    expected = torch.tensor([[0.76, 0.24], [0.0, 1.0], [0.44, 0.56]])
    torch.testing.assert_close(mix_rows(mixing, targets), expected)
    # Leading dimensions (branches, views) take the same mix.
    stacked = torch.stack([targets, targets.flip(1)])
    torch.testing.assert_close(mix_rows(mixing, stacked)[1],
                               expected.flip(1))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert mix_rows(mixing, targets).dtype == torch.float32
    assert dominant_rows(mixing).tolist() == [0, 1, 2]
    # Source 0 has 0.2 in image 0 and 0.8 in image 2: image 2's prediction.
    lopsided = torch.tensor([[0.2, 0.0, 0.8], [0.0, 1.0, 0.0],
                             [0.8, 0.0, 0.2]])
    assert dominant_rows(lopsided).tolist() == [2, 1, 0]
    # A tie stays with the image itself.
    half = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    assert dominant_rows(half).tolist() == [0, 1]


def build(model_cfg, num_samples=10):
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.attach_past_predictions(
        PastPredictionStore(num_samples, NUM_CLASSES, model.num_views,
                            model.num_branches))
    return model


def samples_of(labels, indices):
    return [
        DataSample(metainfo=dict(sample_idx=int(i))).set_gt_label(int(y))
        for i, y in zip(indices, labels)
    ]


def mixed_step(model, inputs, labels, indices, seed=5):
    """The training step's preprocessing and losses, as train_step runs
    them; returns the losses, the mixed images and the mixing matrix."""
    data = dict(inputs=inputs.clone(), data_samples=samples_of(labels,
                                                                indices))
    seeded(seed)
    data = model.data_preprocessor(data, True)
    recorder = model.data_preprocessor.batch_augments
    mixing = recorder._mixing.clone()
    losses = model.loss(data['inputs'], data['data_samples'])
    return losses, data, mixing


PAST_ALPHA = 0.4


def give_past(model, indices, written):
    """Past final predictions (and branch SADs) for the `written` samples."""
    store = model._past_predictions
    g = torch.Generator().manual_seed(7)
    rows = indices[written]
    store.final[rows] = torch.softmax(
        torch.randn(len(rows), NUM_CLASSES, generator=g), 1)
    if model.num_branches:
        joint = NUM_CLASSES * model.num_views
        store.branches[:, rows] = torch.softmax(
            torch.randn(model.num_branches, len(rows), model.num_views,
                        joint, generator=g), -1).to(store.branches.dtype)
    store.written_epoch[rows] = 0
    model.alpha = PAST_ALPHA


def expected_store_rows(mixing):
    """By hand: with one share lam for the batch, a source whose own image
    keeps lam >= 1/2 is read from its image, else from the image it was
    pasted into (where its share is 1 - lam); an image the permutation
    paired with itself is unmixed."""
    lam = float(mixing.diagonal().min())
    off = mixing - torch.diag(mixing.diagonal())
    rows = torch.arange(len(mixing))
    if lam < 0.5:
        for i, j in enumerate(off.argmax(1).tolist()):
            if off[i, j] > 0:
                rows[j] = i  # image i holds 1 - lam of source j
    return rows


def own_targets(labels, past, written, num_classes):
    onehot = F.one_hot(labels, num_classes).float()
    return torch.where(written[..., None],
                       (1 - PAST_ALPHA) * onehot + PAST_ALPHA * past, onehot)


def by_hand_mix(mixing, targets):
    """sum_j M[i, j] * targets[j], written out (rows on dim -2)."""
    n = len(mixing)
    return torch.stack([
        sum(mixing[i, j] * targets[..., j, :] for j in range(n))
        for i in range(n)
    ], dim=-2)


def soft_ce(logits, targets):
    return -(targets * logits.log_softmax(-1)).sum(-1).mean(-1)


@pytest.mark.parametrize('seed', [5, 9])  # lam >= 1/2, lam < 1/2
def test_pskd_target_and_store_of_a_mixed_batch_by_hand(seed):
    """The label part is the mixed label; the past part mixes the stored
    predictions of both sources with the same shares (a source without a
    stored prediction contributes its label alone); each source stores the
    prediction of the image it has the largest share in."""
    model = build(dict(type='PSKD', architecture=dict(
        tiny_architecture(), train_cfg=CUTMIX)))
    model.train()
    labels = torch.tensor([0, 1, 2, 3])
    indices = torch.tensor([5, 1, 8, 2])
    written = torch.tensor([True, True, False, True])
    give_past(model, indices, written)
    losses, data, mixing = mixed_step(model, torch.randn(4, 3, 32, 32),
                                      labels, indices, seed)
    assert not torch.equal(mixing, torch.eye(4))  # the batch was mixed
    assert (float(mixing.diagonal().min()) >= 0.5) == (seed == 5)

    onehot = F.one_hot(labels, NUM_CLASSES).float()
    gt_score = torch.stack([s.gt_score for s in data['data_samples']])
    # The label part is mmpretrain's mixed label.
    torch.testing.assert_close(by_hand_mix(mixing, onehot), gt_score)
    store = model._past_predictions
    target = by_hand_mix(
        mixing, own_targets(labels, store.final[indices], written,
                            NUM_CLASSES))
    # Train-mode BN normalises the same batch: the same logits again.
    with torch.no_grad():
        logits = model.architecture(data['inputs'], mode='tensor')
    torch.testing.assert_close(losses['loss_cls'], soft_ce(logits, target))

    stored_indices, final, _ = model.pop_step_predictions()
    assert torch.equal(stored_indices, indices)
    torch.testing.assert_close(
        final, logits.softmax(1)[expected_store_rows(mixing)])


def test_lsskd_branch_targets_and_store_of_a_mixed_batch_by_hand():
    """A rotation of a mixed image mixes its sources' rotations: every
    view's joint target mixes the sources' joint targets of that view (the
    joint label y * K + k and the stored SAD of that view)."""
    model = build(tiny_lsskd(architecture=dict(tiny_architecture(),
                                               train_cfg=MIXUP)))
    model.train()
    labels = torch.tensor([4, 1, 2, 1])
    indices = torch.tensor([0, 9, 3, 6])
    written = torch.tensor([True, False, True, True])
    give_past(model, indices, written)
    losses, data, mixing = mixed_step(model, torch.randn(4, 3, 32, 32),
                                      labels, indices, seed=2)
    assert not torch.equal(mixing, torch.eye(4))
    store = model._past_predictions
    K, S = model.num_views, model.num_branches
    joint = NUM_CLASSES * K

    with torch.no_grad():
        views = torch.cat([torch.rot90(data['inputs'], k, (2, 3))
                           for k in range(K)])
        stages = model.architecture.backbone(views)
        branch_logits = torch.stack(model.aux_head(model.aux_neck(stages)))
        cls_logits = model.architecture.head(
            model.architecture.neck(model.classifier_stages(stages)))[:4]
    # Branch s, view k, image i: sum_j M[i, j] * target of source j, view k.
    loss_hier = 0
    for s in range(S):
        for k in range(K):
            own = own_targets(labels * K + k,
                              store.branches[s, indices, k].float(), written,
                              joint)
            target = by_hand_mix(mixing, own)
            loss_hier = loss_hier + soft_ce(
                branch_logits[s, k * 4:(k + 1) * 4], target) / K
    torch.testing.assert_close(losses['loss_hier'], loss_hier)
    cls_target = by_hand_mix(
        mixing, own_targets(labels, store.final[indices], written,
                            NUM_CLASSES))
    torch.testing.assert_close(losses['loss_cls'],
                               soft_ce(cls_logits, cls_target))

    rows = expected_store_rows(mixing)
    _, final, branches = model.pop_step_predictions()
    torch.testing.assert_close(final, cls_logits.softmax(1)[rows])
    sads = branch_logits.softmax(-1).unflatten(1, (K, 4)).transpose(1, 2)
    torch.testing.assert_close(branches.float(), sads[:, rows])
