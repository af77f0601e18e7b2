"""The named mutations of LSSKD's core that ``mutation_check.py`` applies.

Each is a mistake the method's code could plausibly contain and that a
syntactic mutation tool would not make (a detach removed, two axes
swapped, a weight not applied, a branch order reversed): the exact text
it replaces in one file, what it puts there, and the test files that
cover that file. A mutation whose text no longer appears exactly once is
reported as stale, so the list follows the code.

``HARMLESS`` names the mutations that no test can kill because they do
not change what the method computes, with the reason.
"""
from typing import NamedTuple, Tuple


class Mutation(NamedTuple):
    name: str
    path: str
    old: str
    new: str
    tests: Tuple[str, ...]


ALGORITHMS = ('tests/test_models/test_lsskd.py',
              'tests/test_models/test_lsskd_wiring.py',
              'tests/test_models/test_classifier_distillation.py',
              'tests/test_models/test_reference_settings.py')
PSKD = ('tests/test_models/test_pskd.py',
        'tests/test_models/test_batch_mixing.py',
        'tests/test_models/test_lsskd.py',
        'tests/test_models/test_reference_settings.py')
HEAD = ('tests/test_models/test_rotation_joint_head.py',
        'tests/test_models/test_lsskd_wiring.py',
        'tests/test_models/test_reference_settings.py')
VIEWS = ('tests/test_models/test_rotation_views.py',
         'tests/test_models/test_lsskd_wiring.py',
         'tests/test_models/test_classifier_distillation.py',
         'tests/test_models/test_reference_settings.py')
TARGETS = ('tests/test_models/test_progressive_targets.py',
           'tests/test_models/test_lsskd.py',
           'tests/test_models/test_lsskd_wiring.py')
LOSSES = ('tests/test_models/test_rotation_joint_head.py',
          'tests/test_models/test_lsskd.py')
STORE = ('tests/test_engine/test_past_prediction_store.py',
         'tests/test_models/test_lsskd_wiring.py')
HOOK = ('tests/test_engine/test_past_prediction_hook.py',
        'tests/test_engine/test_training_run.py')
MIXING = ('tests/test_models/test_batch_mixing.py',
          'tests/test_models/test_mixing_recipes.py')
LOSS_CONFIG = ('tests/test_engine/test_reliability.py::'
               'test_bad_settings_fail_when_the_runner_is_built', )
SHIPPED = ('tests/test_configs.py::test_the_shipped_method_is_the_papers', )
COC = ('tests/test_configs.py::test_coc_configs_build_cutout_and_cutmix_as_'
       'documented', )

LSSKD_PY = 'mmlsskd/models/algorithms/lsskd.py'
PSKD_PY = 'mmlsskd/models/algorithms/pskd.py'
HEAD_PY = 'mmlsskd/models/heads/rotation_joint_head.py'
VIEWS_PY = 'mmlsskd/models/utils/rotation_views.py'
MUTATIONS = [
    # The algorithm: which tensors meet in which loss.
    Mutation('feature target not detached', LSSKD_PY,
             'last_feat = last_feat.detach()', 'last_feat = last_feat',
             ALGORITHMS),
    Mutation('feature term includes the deepest branch', LSSKD_PY,
             'shallower = torch.stack(aux_feats[:-1])',
             'shallower = torch.stack(aux_feats)', ALGORITHMS),
    Mutation('feature term not applied', LSSKD_PY,
             "losses['loss_feat'] = sum_over_parts(",
             "losses['loss_feat'] = 0 * sum_over_parts(", ALGORITHMS),
    Mutation('classifier teacher not detached', LSSKD_PY,
             'aux_logits[-1].detach(), batch, head_rows // batch)',
             'aux_logits[-1], batch, head_rows // batch)', ALGORITHMS),
    Mutation('classifier teacher is the shallowest branch', LSSKD_PY,
             'aux_logits[-1].detach(), batch, head_rows // batch)',
             'aux_logits[0].detach(), batch, head_rows // batch)',
             ALGORITHMS),
    Mutation('branch past weights sample-major, not view-major', LSSKD_PY,
             'past_weight.repeat(self.num_views)',
             'past_weight.repeat_interleave(self.num_views)', ALGORITHMS),
    Mutation('stored branch predictions with views and images swapped',
             LSSKD_PY, '(self.num_views, batch)).transpose(1, 2)',
             '(batch, self.num_views))', ALGORITHMS),
    Mutation('classifier stores logits, not probabilities', LSSKD_PY,
             'cls_logits.detach().softmax(dim=1)', 'cls_logits.detach()',
             ALGORITHMS),
    Mutation('classifier trained on the last view, not the unrotated',
             LSSKD_PY, 'cls_logits = logits[:batch]',
             'cls_logits = logits[-batch:]', ALGORITHMS),
    Mutation('branch share of the classifier target inverted', LSSKD_PY,
             '                                 self.branch_target_weight)',
             '                                 1 - self.branch_target_weight'
             ')', ALGORITHMS),
    # PS-KD's targets.
    Mutation('past weight given to samples without a past prediction',
             PSKD_PY, 'past_weight = self.alpha * past.written.to('
             'inputs.dtype)', 'past_weight = self.alpha * torch.ones_like('
             'past.written, dtype=inputs.dtype)', PSKD),
    Mutation('alpha_t not applied', PSKD_PY,
             'past_weight = self.alpha * past.written.to(inputs.dtype)',
             'past_weight = past.written.to(inputs.dtype)', PSKD),
    Mutation('targets of mixed images not mixed', PSKD_PY,
             'return targets if mixing is None else mix_rows(mixing, '
             'targets)', 'return targets', PSKD),
    Mutation('prediction of a mixture stored for its first source',
             PSKD_PY, 'return final[rows], branches[:, rows]',
             'return final, branches', PSKD),
    Mutation('uniform past prediction ignored', PSKD_PY,
             "if self.past_prediction == 'uniform':", 'if False:', PSKD),
    # The branches' head.
    Mutation('KL teacher not detached', HEAD_PY,
             'deepest = logits[-1].detach().expand_as(shallower)',
             'deepest = logits[-1].expand_as(shallower)', HEAD),
    Mutation('KL direction swapped', HEAD_PY,
             'sum_over_parts(self.loss_kl, shallower,\n'
             '                                               deepest,',
             'sum_over_parts(self.loss_kl, deepest,\n'
             '                                               shallower,',
             HEAD),
    Mutation('KL also distils the deepest branch into itself', HEAD_PY,
             'shallower = logits[:-1]', 'shallower = logits[:]', HEAD),
    Mutation('branch accuracies logged under the reversed branch', HEAD_PY,
             'enumerate(self.accuracies(logits, joint_labels),',
             'enumerate(reversed(self.accuracies(logits, joint_labels)),',
             HEAD),
    Mutation('hierarchical softening always off', HEAD_PY,
             'if not self.hierarchical_softening:', 'if True:', HEAD),
    Mutation('hierarchical softening never off', HEAD_PY,
             'if not self.hierarchical_softening:', 'if False:', HEAD),
    Mutation('branch targets of mixed images not mixed', HEAD_PY,
             '        if mixing is not None:\n'
             '            targets = mix_rows(',
             '        if False:\n            targets = mix_rows(',
             HEAD + MIXING),
    # The views and their joint labels.
    Mutation('joint labels name the reversed rotation', VIEWS_PY,
             'views.unsqueeze(1)).reshape(-1)',
             'views.flip(0).unsqueeze(1)).reshape(-1)', VIEWS),
    Mutation('views rotated the other way', VIEWS_PY,
             'torch.rot90(inputs, t, (2, 3))',
             'torch.rot90(inputs, t, (3, 2))', VIEWS),
    Mutation("class logits read another view's joint entries", VIEWS_PY,
             'num_views, device=joint.device).repeat_interleave(batch_size)',
             'num_views, device=joint.device).repeat(batch_size)', VIEWS),
    Mutation('class probabilities averaged over images, not views',
             VIEWS_PY, '.unflatten(0, (self.num_views, batch_size))'
             '.mean(dim=0)',
             '.unflatten(0, (batch_size, self.num_views)).mean(dim=1)',
             VIEWS),
    # Progressive targets and branch losses.
    Mutation('progressive target weights swapped',
             'mmlsskd/models/utils/progressive_targets.py',
             'torch.lerp(onehot, past_probs, weight)',
             'torch.lerp(past_probs, onehot, weight)', TARGETS),
    Mutation('one-hot label off by one',
             'mmlsskd/models/utils/progressive_targets.py',
             '1, labels.unsqueeze(1), 1)',
             '1, (labels.unsqueeze(1) + 1) % num_classes, 1)', TARGETS),
    Mutation('stacked branch losses not scaled to a sum',
             'mmlsskd/models/utils/branch_losses.py',
             'targets.flatten(0, 1)) * len(inputs)',
             'targets.flatten(0, 1))', LOSSES),
    Mutation('every loss taken to average over rows',
             'mmlsskd/models/utils/branch_losses.py',
             'return torch.is_tensor(stacked) and stacked.dim() == 0 and',
             'return True or torch.is_tensor(stacked) and', LOSSES),
    # The store.
    Mutation('written epoch not recorded',
             'mmlsskd/engine/past_prediction_store.py',
             'self.written_epoch[indices] = epoch\n',
             'self.written_epoch[indices] = -1\n', STORE),
    Mutation('stored branch rows returned sample-major',
             'mmlsskd/engine/past_prediction_store.py',
             'branches = stored.transpose(1, 2).reshape(',
             'branches = stored.reshape(', STORE),
    Mutation('branch rows marked written sample-major',
             'mmlsskd/engine/past_prediction_store.py',
             'branch_written = written.repeat(self.num_views).view(',
             'branch_written = written.repeat_interleave(self.num_views)'
             '.view(', STORE),
    Mutation('an index one past the store accepted',
             'mmlsskd/engine/past_prediction_store.py',
             'or int(indices.max()) >= num_samples):',
             'or int(indices.max()) > num_samples):', STORE),
    # The hook: alpha_t and the door.
    Mutation('alpha ramp off by one epoch',
             'mmlsskd/engine/hooks/past_prediction_hook.py',
             'alpha = self.alpha_T * (runner.epoch + 1) / runner.max_epochs',
             'alpha = self.alpha_T * runner.epoch / runner.max_epochs',
             HOOK),
    Mutation('alpha not ramped',
             'mmlsskd/engine/hooks/past_prediction_hook.py',
             'alpha = self.alpha_T * (runner.epoch + 1) / runner.max_epochs',
             'alpha = self.alpha_T', HOOK),
    Mutation('sample indices not checked at the door',
             'mmlsskd/engine/sample_index_check.py',
             'if carried != expected:', 'if False:',
             ('tests/test_engine/test_sample_index_check.py', )),
    # Batch mixing.
    Mutation('mixing matrix transposed',
             'mmlsskd/models/utils/batch_mixing.py',
             'return torch.matmul(mixing.to(targets.dtype), targets)',
             'return torch.matmul(mixing.t().to(targets.dtype), targets)',
             MIXING),
    Mutation('dominant rows read along the wrong axis',
             'mmlsskd/models/utils/batch_mixing.py',
             'return (mixing + 1e-6 * own).argmax(dim=0)',
             'return (mixing + 1e-6 * own).argmax(dim=1)', MIXING),
    # Loss settings.
    Mutation('negative loss weight accepted',
             'mmlsskd/models/utils/loss_config.py',
             'weight < 0 or', 'weight < -1e9 or', LOSS_CONFIG),
    Mutation('zero temperature accepted',
             'mmlsskd/models/utils/loss_config.py',
             "cfg['tau'] > 0)", "cfg['tau'] >= 0)", LOSS_CONFIG),
    # The shipped method config and the COC recipe.
    Mutation('alpha_T not the paper\'s', 'configs/_base_/methods/lsskd.py',
             "dict(type='PastPredictionHook', alpha_T=0.8)",
             "dict(type='PastPredictionHook', alpha_T=0.5)", SHIPPED),
    Mutation('KL temperature not the paper\'s',
             'configs/_base_/methods/lsskd.py',
             "type='mmrazor.KLDivergence', tau=3.0",
             "type='mmrazor.KLDivergence', tau=1.0", SHIPPED),
    Mutation('feature term weight zeroed', 'configs/_base_/methods/lsskd.py',
             "normalize=False, loss_weight=0.01)",
             "normalize=False, loss_weight=0.0)", SHIPPED),
    Mutation('COC without Cutout',
             'configs/_base_/datasets/cifar100_bs64_cutout.py',
             "    dict(type='Cutout', shape=8, pad_val=(129, 124, 112), "
             "prob=1.0),\n", '', COC),
    Mutation('COC CutMix never drawn',
             'configs/baselines/resnet20_1xb64-240e-coc_cifar100.py',
             'probs=[0.5]', 'probs=[0.0]', COC),
    # The tools' ends and the bfloat16 wrapper.
    Mutation('every exception taken for a refusal',
             'mmlsskd/utils/refusals.py', 'REFUSALS = (LSSKDConfigError,',
             'REFUSALS = (Exception, LSSKDConfigError,',
             ('tests/test_utils/test_refusals.py', )),
    Mutation("float16 run's loss scale handed to the optimizer",
             'mmlsskd/engine/optimizers/bf16_amp_optim_wrapper.py',
             "state_dict.pop('loss_scaler', None)", 'pass',
             ('tests/test_engine/test_mixed_precision.py', )),
]

# Mutations no test can kill, and why each leaves the method unchanged
# (none at the last run: every survivor so far got a test that kills it).
HARMLESS = {}
