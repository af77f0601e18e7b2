"""The CIFAR-100 study's methods and their result files.

Which shipped config each method trains (``METHODS``) and with which
overrides (``OVERRIDES``), its name in tables and plots (``LABELS``), which
runs explain a result rather than offer a method (``DIAGNOSTIC_METHODS``)
which are finished from another method's checkpoint (``DERIVED``) and
which regimes ship as configs of their own (``STUDY_CONFIGS``);
where a run's result file lies (``result_path``, named after the study's
regime) and the files of one regime (``load_results``). Shared by the
study script, its report and the analysis tools that read its results.
"""
import argparse
import json
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
# Where the study's result files are committed.
RESULTS_DIR = ROOT / 'docs/results/cifar100_study'
ABLATIONS = ('no-hier', 'no-kl', 'no-feat', 'no-past', 'cls-kd', 'cls-kd-all',
             'branch-target', 'cls-kd-all-branch-target', 'precise-bn',
             'all-options')
METHODS = {
    'ce': 'configs/baselines/{model}_1xb64-240e_cifar100.py',
    'lbs': 'configs/baselines/{model}_1xb64-240e-lbs_cifar100.py',
    'pskd': 'configs/pskd/pskd_{model}_1xb64-240e_cifar100.py',
    'lsskd': 'configs/lsskd/lsskd_{model}_1xb64-240e_cifar100.py',
    # With Cutout and CutMix (the paper's "COC" rows).
    'ce-coc': 'configs/baselines/{model}_1xb64-240e-coc_cifar100.py',
    'pskd-coc': 'configs/pskd/pskd-coc_{model}_1xb64-240e_cifar100.py',
    'lsskd-coc': 'configs/lsskd/lsskd-coc_{model}_1xb64-240e_cifar100.py',
    **{
        f'lsskd-{name}':
        f'configs/lsskd/lsskd-{name}_{{model}}_1xb64-240e_cifar100.py'
        for name in ABLATIONS
    },
    # A diagnostic, not an option: BN statistics recomputed over the four
    # views, as training normalised them (the precise-bn config's hook).
    'lsskd-precise-bn-views':
    'configs/lsskd/lsskd-precise-bn_{model}_1xb64-240e_cifar100.py',
}
# Diagnostics, not options: a shipped config with the study's overrides.
# Label smoothing as strong as PS-KD's target at this scale, to tell the
# amount of mass it moves off the label from what the past predictions say:
# 0.4 is about the ramp's mean alpha (0.43) times the mass the predictions
# put off the label; 0.8 is alpha_T, the last epoch's. PS-KD with a uniform
# past prediction is the exact control: label smoothing ramped as alpha_t.
SMOOTHING_VALUES = (0.4, 0.8)
STORE_FP16_TOP32 = {'custom_hooks.0.store.dtype': 'float16',
                    'custom_hooks.0.store.topk': 32}
DIAGNOSTICS = {
    **{
        f'lbs-{value}': ('lbs', {'model.head.loss.label_smooth_val': value})
        for value in SMOOTHING_VALUES
    },
    'pskd-uniform': ('pskd', {'model.past_prediction': 'uniform'}),
    # What bounding the past-prediction store costs in accuracy: float16
    # top-32 (the ImageNet config's store), then also only the unrotated
    # view's branch distributions, against LSSKD's dense float32 store.
    'lsskd-store-fp16-top32': ('lsskd', STORE_FP16_TOP32),
    'lsskd-store-fp16-top32-unrotated':
    ('lsskd', {**STORE_FP16_TOP32,
               'custom_hooks.0.store.branch_views': 'unrotated'}),
}
OVERRIDES = {method: options for method, (_, options) in DIAGNOSTICS.items()}
METHODS.update(
    {method: METHODS[source] for method, (source, _) in DIAGNOSTICS.items()})
LABELS = dict(
    ce='Cross-entropy', lbs='Label smoothing 0.1', pskd='PS-KD',
    lsskd='LSSKD (paper)', **{
        'ce-coc': 'Cross-entropy + Cutout + CutMix',
        'pskd-coc': 'PS-KD + Cutout + CutMix',
        'lsskd-coc': 'LSSKD + Cutout + CutMix',
        'lsskd-no-hier': 'LSSKD without hierarchical softening',
        'lsskd-no-kl': 'LSSKD without deep-to-shallow KL',
        'lsskd-no-feat': 'LSSKD without feature consistency',
        'lsskd-no-past': 'LSSKD without past predictions',
        'lsskd-cls-kd': 'LSSKD + branch KD into the classifier',
        'lsskd-cls-kd-all': 'LSSKD + branch KD, all views',
        'lsskd-branch-target': 'LSSKD + branch in the target',
        'lsskd-cls-kd-all-branch-target':
        'LSSKD + branch KD, all views, + branch in the target',
        'lsskd-precise-bn': 'LSSKD + BN recalibration',
        'lsskd-all-options':
        'LSSKD + branch KD, all views, + branch in the target, '
        '+ BN recalibration',
        'lsskd-precise-bn-views':
        'LSSKD, BN recalibrated on all four views (diagnostic)',
        **{
            f'lbs-{value}': f'Label smoothing {value} (diagnostic)'
            for value in SMOOTHING_VALUES
        },
        'pskd-uniform': 'PS-KD, uniform past prediction (diagnostic)',
        'lsskd-store-fp16-top32': 'LSSKD, float16 top-32 store (diagnostic)',
        'lsskd-store-fp16-top32-unrotated':
        'LSSKD, float16 top-32 store, unrotated view only (diagnostic)',
    })
# Runs that explain a result rather than offer a method to choose: the
# README's summary leaves them to docs/results.md.
DIAGNOSTIC_METHODS = (*DIAGNOSTICS, 'lsskd-precise-bn-views')
# Methods whose training is the source method's, to the bit: their result
# is the source's final checkpoint, finished as their config says.
DERIVED = {
    'lsskd-precise-bn': 'lsskd',
    'lsskd-precise-bn-views': 'lsskd',
    'lsskd-all-options': 'lsskd-cls-kd-all-branch-target',
}
# Training precisions: the optimizer wrapper each trains with. A result's
# file name carries any precision but float32 (whose files came first).
PRECISIONS = dict(fp32='OptimWrapper', bf16='BF16AmpOptimWrapper')

class StudyRow(NamedTuple):
    """A method of the study trained in one regime: a row of its tables."""
    method: str
    model: str
    fraction: float
    epochs: int
    precision: str

    def regime_args(self, results_dir=RESULTS_DIR) -> argparse.Namespace:
        """The study's arguments that name this row's regime, for
        :func:`regime` and :func:`load_results`."""
        return argparse.Namespace(
            model=self.model, fraction=self.fraction, epochs=self.epochs,
            holdout=0.0, precision=self.precision,
            results_dir=str(results_dir))


# The rows a user can train again with tools/train.py: the study's config of
# the method at seed 0 in that regime, shipped. The model index takes their
# measured top-1 from the rows' result files.
STUDY_CONFIGS = {
    StudyRow('ce', 'resnet20', 0.2, 60, 'bf16'):
    'configs/baselines/resnet20_1xb64-60e-bf16_cifar100-20pct.py',
    StudyRow('lbs', 'resnet20', 0.2, 60, 'bf16'):
    'configs/baselines/resnet20_1xb64-60e-bf16-lbs_cifar100-20pct.py',
    StudyRow('ce', 'resnet20', 0.2, 240, 'bf16'):
    'configs/baselines/resnet20_1xb64-240e-bf16_cifar100-20pct.py',
    StudyRow('pskd', 'resnet20', 0.2, 60, 'bf16'):
    'configs/pskd/pskd_resnet20_1xb64-60e-bf16_cifar100-20pct.py',
    StudyRow('lsskd', 'resnet20', 0.2, 60, 'bf16'):
    'configs/lsskd/lsskd_resnet20_1xb64-60e-bf16_cifar100-20pct.py',
}


# --cfg-options that change how a run computes, not what it learns (a test
# checks that channels-last leaves the losses and gradients as they are).
LAYOUT_OPTIONS = ('model.channels_last', )


def training_options(options: dict) -> dict:
    """The ``--cfg-options`` among ``options`` that change what a run
    learns."""
    return {k: v for k, v in options.items() if k not in LAYOUT_OPTIONS}


# The paper's learning-rate drops, in epochs of its 240.
PAPER_EPOCHS, PAPER_MILESTONES = 240, (150, 180, 210)


def scaled_milestones(epochs: int, milestones=PAPER_MILESTONES,
                      max_epochs: int = PAPER_EPOCHS) -> list:
    """The learning-rate drops of a schedule compressed (or stretched)
    from ``max_epochs`` to ``epochs``, as the study trains it."""
    return [max(1, round(m * epochs / max_epochs)) for m in milestones]


def regime(args: argparse.Namespace) -> str:
    """The part of a result's file name that names the study's regime."""
    holdout = f'_holdout{args.holdout:g}' if args.holdout else ''
    precision = '' if args.precision == 'fp32' else f'_{args.precision}'
    return (f'{args.model}_{args.fraction:g}frac_{args.epochs}e{holdout}'
            f'{precision}')


def result_path(args: argparse.Namespace, method: str, seed: int) -> Path:
    """The result file of ``method``'s run at ``seed`` in the regime."""
    return Path(args.results_dir) / f'{method}_{regime(args)}_seed{seed}.json'


def load_results(args: argparse.Namespace) -> dict:
    """{method: [result, ...]} of this model, fraction and epochs."""
    results = {}
    for method in METHODS:
        for path in sorted(Path(args.results_dir).glob(
                f'{method}_{regime(args)}_seed*.json')):
            result = json.loads(path.read_text())
            # Files from before the precision was recorded are float32's.
            precision = result.get('precision', 'fp32')
            if precision != args.precision:
                raise SystemExit(
                    f'{path} holds a {precision} run, not the {args.precision}'
                    f' run its name says: move it aside.')
            options = training_options(result.get('cfg_options', {}))
            if options:
                raise SystemExit(
                    f'{path} holds a run trained with --cfg-options '
                    f'{options}: it would be read as the study\'s {method}. '
                    f'Move it to a results folder of its own.')
            results.setdefault(method, []).append(result)
    return results
