"""Each method minus cross-entropy across training, at several lengths.

For the CIFAR study's result files of one student and data fraction at
each training length given (``EPOCHS:PRECISION``, e.g. ``12:fp32 60:bf16``),
it plots, per length, every method's test top-1 minus cross-entropy's,
paired by seed, at every evaluated epoch (thin: one seed; thick: their
mean), over the share of training done, and beneath it the accuracy curves
themselves (mean over seeds). It also writes the paired differences as one
JSON file, the numbers behind the figure. Everything comes from the result
files; nothing is trained.

Example::

    python tools/analysis_tools/study_lengths.py --lengths 12:fp32 60:bf16 \\
        --methods pskd lsskd --out docs/figures/cifar100_study_lengths.png
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
from cifar100_study_methods import (LABELS, PRECISIONS,  # noqa: E402
                                    RESULTS_DIR, load_results)
from cifar100_study_report import legend_label  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='resnet20')
    parser.add_argument('--fraction', type=float, default=0.2)
    parser.add_argument(
        '--lengths', nargs='+', default=['12:fp32', '60:bf16'],
        help='EPOCHS:PRECISION of each study regime to show')
    parser.add_argument('--methods', nargs='+', default=['pskd', 'lsskd'])
    parser.add_argument(
        '--results-dir', default=str(RESULTS_DIR))
    parser.add_argument('--out', required=True, help='the PNG to write')
    return parser.parse_args()


def regime_args(args: argparse.Namespace, length: str) -> argparse.Namespace:
    """The study script's view of one ``EPOCHS:PRECISION`` regime."""
    epochs, precision = length.split(':')
    if precision not in PRECISIONS:
        raise SystemExit(f'{length}: the precision must be one of '
                         f'{sorted(PRECISIONS)}.')
    return argparse.Namespace(model=args.model, fraction=args.fraction,
                              epochs=int(epochs), precision=precision,
                              holdout=0.0, results_dir=args.results_dir)


def paired_curves(runs: list, reference: list) -> dict:
    """{seed: [(epoch, top-1 minus the reference's at that epoch), ...]}
    for the seeds both have, at the epochs both evaluated."""
    by_seed = {r['seed']: {p['epoch']: p['accuracy/top1']
                           for p in r['curve']} for r in reference}
    curves = {}
    for run in runs:
        ref = by_seed.get(run['seed'])
        if ref is None:
            continue
        curves[run['seed']] = [(p['epoch'], p['accuracy/top1'] -
                                ref[p['epoch']])
                               for p in run['curve'] if p['epoch'] in ref]
    return curves


def mean_curve(runs: list) -> list:
    """[(epoch, mean top-1 over seeds)] at the epochs every run evaluated."""
    epochs = set.intersection(*({p['epoch'] for p in r['curve']}
                                for r in runs))
    return [(e, statistics.mean(p['accuracy/top1'] for r in runs
                                for p in r['curve'] if p['epoch'] == e))
            for e in sorted(epochs)]


def main() -> None:
    args = parse_args()
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(args.lengths), squeeze=False,
                             figsize=(5 * len(args.lengths), 7),
                             sharex='col')
    numbers = {}
    for column, length in enumerate(args.lengths):
        regime = regime_args(args, length)
        results = load_results(regime)
        if 'ce' not in results:
            raise SystemExit(f'No cross-entropy results at {length}.')
        top, bottom = axes[0][column], axes[1][column]
        numbers[length] = {}
        for index, method in enumerate(['ce'] + args.methods):
            runs = results.get(method)
            if not runs:
                continue
            color = f'C{index}'  # the same method, the same colour
            curve = mean_curve(runs)
            bottom.plot([e for e, _ in curve], [a for _, a in curve],
                        marker='o', color=color,
                        label=f'{LABELS[method]} ({len(runs)})')
            if method == 'ce':
                continue
            curves = paired_curves(runs, results['ce'])
            numbers[length][method] = {str(s): c for s, c in curves.items()}
            for seed_curve in curves.values():
                top.plot([e for e, _ in seed_curve],
                         [d for _, d in seed_curve], color=color,
                         alpha=0.3, linewidth=1)
            epochs = sorted(set.intersection(
                *({e for e, _ in c} for c in curves.values())))
            mean = [statistics.mean(dict(c)[e] for c in curves.values())
                    for e in epochs]
            top.plot(epochs, mean, color=color, linewidth=2.5,
                     label=legend_label(method, len(curves)))
        top.axhline(0, color='gray', linewidth=1)
        top.set_title(f'{regime.epochs} epochs ({regime.precision})')
        top.set_ylabel('test top-1 minus cross-entropy (points)')
        bottom.set_ylabel('test top-1 (%), mean over seeds')
        bottom.set_xlabel('epoch')
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f'{args.model}, {args.fraction:g} of every class of '
                 f'CIFAR-100; thin lines: one seed, thick: their mean')
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    out.with_suffix('.json').write_text(json.dumps(numbers, indent=1) + '\n')
    print(f'{out} and {out.with_suffix(".json")}')


if __name__ == '__main__':
    main()
