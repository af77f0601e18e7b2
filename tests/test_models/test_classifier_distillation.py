"""The paths from the auxiliary branches to the deployed classifier:
distillation into it, the branch share of its target, BN recalibration."""
import torch
import torch.nn.functional as F
from conftest import NUM_CLASSES, make_cfg, hook_of
from mmengine.runner import Runner
from test_lsskd import batch, build

KL = dict(type='mmrazor.KLDivergence', tau=3.0, loss_weight=1.0)


def forward_parts(model, inputs):
    """Logits of the classifier on every view and the deepest branch's
    joint logits, recomputed outside LSSKD.loss on the same weights."""
    views = torch.cat([torch.rot90(inputs, k, (2, 3)) for k in range(4)])
    stages = model.architecture.backbone(views)
    logits = model.architecture.head(model.architecture.neck(stages))
    joint = model.aux_head(model.aux_neck(stages))[-1]
    return logits, joint


def kl_by_hand(student, teacher, tau=3.0):
    p = F.softmax(teacher / tau, dim=1)
    return tau**2 * (p * (p.log() - F.log_softmax(student / tau, 1))).sum(
        1).mean()


def test_branch_class_logits_take_each_views_own_rotation_column():
    model = build()
    batch_size, k, c = 2, 4, NUM_CLASSES
    joint = torch.arange(k * batch_size * c * k, dtype=torch.float).view(
        k * batch_size, c * k)
    got = model.view_transform.class_logits(joint, batch_size)
    for row in range(k * batch_size):
        view = row // batch_size
        assert torch.equal(got[row], joint[row, view::k])
    # One view: the unrotated rows only.
    assert torch.equal(
        model.view_transform.class_logits(joint, batch_size, 1),
        got[:batch_size])


def test_classifier_distillation_on_the_unrotated_view_by_hand():
    model = build(loss_cls_distill=KL)
    model.train()
    inputs, samples, _, _ = batch()
    losses = model.loss(inputs, samples)
    logits, joint = forward_parts(model, inputs)
    teacher = joint[:4].view(4, NUM_CLASSES, 4)[:, :, 0]
    torch.testing.assert_close(losses['loss_cls_distill'],
                               kl_by_hand(logits[:4], teacher))


def test_classifier_distillation_on_all_views_by_hand():
    model = build(loss_cls_distill=KL, cls_distill_views='all')
    model.train()
    inputs, samples, _, _ = batch()
    losses = model.loss(inputs, samples)
    logits, joint = forward_parts(model, inputs)
    teacher = torch.cat([
        joint[4 * v:4 * (v + 1)].view(4, NUM_CLASSES, 4)[:, :, v]
        for v in range(4)
    ])
    torch.testing.assert_close(losses['loss_cls_distill'],
                               kl_by_hand(logits, teacher))


def test_only_the_distillation_term_reaches_the_classifier_from_the_branches():
    inputs, samples, _, _ = batch()
    grads = {}
    for name, extra in (('paper', {}), ('distill', dict(loss_cls_distill=KL))):
        model = build(**extra)
        losses = model.loss(inputs, samples)
        side = sum(v for k, v in losses.items()
                   if k.startswith('loss') and k != 'loss_cls')
        side.backward()
        grads[name] = model.architecture.head.fc.weight.grad
        # The teacher is detached: no gradient into the deepest branch's
        # classifier from the distillation term.
        if name == 'distill':
            model.zero_grad()
            losses = model.loss(inputs, samples)
            losses['loss_cls_distill'].backward()
            assert model.aux_head.classifiers[-1].weight.grad is None or \
                not model.aux_head.classifiers[-1].weight.grad.any()
    assert grads['paper'] is None or not grads['paper'].any()
    assert grads['distill'].abs().sum() > 0


def test_branch_share_of_the_classifier_target_by_hand():
    model = build(branch_target_weight=0.25)
    model.train()
    inputs, samples, labels, indices = batch()
    store = model._past_predictions
    past = torch.softmax(torch.randn(4, NUM_CLASSES), 1)
    store.final[indices] = past
    store.written_epoch[indices] = 0
    model.alpha = 0.4
    losses = model.loss(inputs, samples)

    logits, joint = forward_parts(model, inputs)
    branch = joint[:4].view(4, NUM_CLASSES, 4)[:, :, 0].softmax(1)
    onehot = F.one_hot(labels, NUM_CLASSES).float()
    target = 0.75 * (0.6 * onehot + 0.4 * past) + 0.25 * branch
    expected = -(target * F.log_softmax(logits[:4], 1)).sum(1).mean()
    torch.testing.assert_close(losses['loss_cls'], expected)


def bn_state(module):
    return {
        k: v.clone()
        for k, v in module.state_dict().items() if 'running' in k
    }


def test_precise_bn_recalibrates_the_classifier_on_unrotated_images(
        tiny_cfg_options, tmp_path):
    """mmpretrain's PreciseBNHook on LSSKD: the classifier's BN statistics
    become those of unrotated training images; the weights and the
    past-prediction store are untouched; a second run gives the same."""
    hooks = [
        dict(type='PastPredictionHook', alpha_T=0.8),
        dict(type='EpochSeedHook'),
        dict(type='PreciseBNHook', num_samples=16, priority='ABOVE_NORMAL')
    ]
    results = []
    for run in range(2):
        cfg = make_cfg(tiny_cfg_options, tmp_path / f'run{run}',
                       train_cfg=dict(max_epochs=1), custom_hooks=hooks,
                       randomness=dict(seed=0))
        runner = Runner.from_cfg(cfg)
        snapshots, stem_outputs = {}, []
        precise = next(h for h in runner.hooks
                       if type(h).__name__ == 'PreciseBNHook')
        original = precise.after_train_epoch

        def wrapped(runner, original=original):
            model = runner.model
            snapshots['params'] = {
                k: v.clone() for k, v in model.named_parameters()}
            snapshots['store'] = {
                k: v.clone()
                for k, v in hook_of(runner).store.state_dict().items()}
            snapshots['bn_before'] = bn_state(model.architecture)
            conv1 = model.architecture.backbone.conv1
            handle = conv1.register_forward_hook(
                lambda m, args, out: stem_outputs.append(out.detach()))
            original(runner)
            handle.remove()

        precise.after_train_epoch = wrapped
        runner.train()
        model = runner.model
        for k, v in model.named_parameters():
            assert torch.equal(v, snapshots['params'][k]), k
        for k, v in hook_of(runner).store.state_dict().items():
            assert torch.equal(v, snapshots['store'][k]), k
        after = bn_state(model.architecture)
        assert any(not torch.equal(after[k], snapshots['bn_before'][k])
                   for k in after)

        # The first BN of the classifier by hand: the batch statistics of
        # the stem's output, averaged over PreciseBN's 2 batches of 8 images,
        # unrotated (8 rows, not the 4 x 8 views of a training step).
        assert [len(y) for y in stem_outputs] == [8, 8]
        stem_bn = model.architecture.backbone.norm1
        torch.testing.assert_close(
            stem_bn.running_mean,
            torch.stack([y.mean((0, 2, 3)) for y in stem_outputs]).mean(0))
        torch.testing.assert_close(
            stem_bn.running_var,
            torch.stack([y.var((0, 2, 3)) for y in stem_outputs]).mean(0))
        results.append(after)
    for k in results[0]:
        assert torch.equal(results[0][k], results[1][k]), k


def test_precise_bn_leaves_the_training_path_unchanged(tiny_cfg_options,
                                                       tmp_path):
    """PreciseBNHook changes BN statistics and nothing that training uses:
    with EpochSeedHook reseeding every epoch, the weights and the store
    after two epochs are those of the same run without it, bit for bit
    (what lets the CIFAR study derive the recalibrated result from the
    plain run's checkpoint)."""
    base = [dict(type='PastPredictionHook', alpha_T=0.8),
            dict(type='EpochSeedHook')]
    precise = dict(type='PreciseBNHook', num_samples=16,
                   priority='ABOVE_NORMAL')
    states = []
    for name, hooks in (('plain', base), ('precise', base + [precise])):
        cfg = make_cfg(tiny_cfg_options, tmp_path / name,
                       train_cfg=dict(max_epochs=2), custom_hooks=hooks,
                       randomness=dict(seed=0))
        runner = Runner.from_cfg(cfg)
        runner.train()
        states.append((
            {k: v.clone() for k, v in runner.model.named_parameters()},
            hook_of(runner).store.state_dict(),
            bn_state(runner.model.architecture)))
    (params, store, bn), (params_p, store_p, bn_p) = states
    for k in params:
        assert torch.equal(params[k], params_p[k]), k
    for k in store:
        assert torch.equal(store[k], store_p[k]), k
    assert any(not torch.equal(bn[k], bn_p[k]) for k in bn)


def test_the_branch_is_the_classifiers_teacher_never_its_student():
    """Distillation into the classifier, and the branch share of its
    target, use the deepest branch detached: their gradient reaches the
    classifier's head, never a branch's head or neck."""
    # A KL that leaves its teacher attached (mmrazor's detaches it by
    # default), so the detach under test is the algorithm's own.
    attached = dict(KL, teacher_detach=False)
    for options, term in ((dict(loss_cls_distill=attached),
                           'loss_cls_distill'),
                          (dict(branch_target_weight=0.5), 'loss_cls')):
        model = build(**options)
        model.train()
        inputs, samples, _, _ = batch()
        loss = model.loss(inputs, samples)[term]
        named = dict(model.named_parameters())
        grads = dict(zip(named, torch.autograd.grad(
            loss, list(named.values()), allow_unused=True)))

        def reached(prefix):
            return any(g is not None and bool(g.abs().sum() > 0)
                       for n, g in grads.items() if n.startswith(prefix))

        assert reached('architecture.head.'), term
        assert not reached('aux_head.'), term
        assert not reached('aux_neck.'), term


def test_the_classifier_learns_its_labels_on_the_unrotated_view_only():
    """Distilled on every view, the classifier classifies all four, but
    its own loss is soft cross-entropy on the unrotated images (the first
    batch of rows), here against one-hot targets (no past yet)."""
    model = build(loss_cls_distill=KL, cls_distill_views='all')
    model.train()
    inputs, samples, labels, _ = batch()
    losses = model.loss(inputs, samples)
    logits, _ = forward_parts(model, inputs)
    torch.testing.assert_close(losses['loss_cls'],
                               F.cross_entropy(logits[:4], labels))
