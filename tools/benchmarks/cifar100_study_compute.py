"""Is LSSKD worth its compute? The CIFAR-100 study's answer, built from its
result files and its cost file alone.

Three blocks of docs/results.md:

- the cost table: every method's seconds per training epoch, training
  FLOPs per image and peak step memory, each relative to cross-entropy
  (``cifar100_study_cost.py`` measured them side by side);
- the compute-matched comparison: LSSKD at the study's length against
  cross-entropy trained ``--long-epochs`` (four times as many images
  through the backbone as LSSKD's four views at 60 epochs), paired by
  seed, with the measured cost of both runs beside it and cross-entropy's
  own gain from the short to the long schedule;
- label smoothing against cross-entropy and against LSSKD at the study's
  length, paired by seed.

A difference is a verdict only with ``VERDICT_SEEDS`` seeds and a mean
larger than every seed spread involved (the study's rule); with fewer
seeds the block says how many there are and concludes nothing.

Example::

    python tools/benchmarks/cifar100_study_compute.py --update-docs
"""
import argparse
import json
import os
import statistics
from pathlib import Path

from cifar100_study_methods import LABELS, ROOT, load_results  # beside this
from cifar100_study_report import (RESULTS_PAGE, VERDICT_SEEDS,
                                   paired_difference, verdict_of,
                                   write_block)

COST, COMPUTE_MATCHED, LABEL_SMOOTHING = ('cifar100-study-cost',
                                          'compute-matched',
                                          'label-smoothing')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='resnet20')
    parser.add_argument('--fraction', type=float, default=0.2)
    parser.add_argument('--precision', default='bf16')
    parser.add_argument(
        '--epochs', type=int, default=60,
        help='the study\'s length, at which LSSKD and label smoothing ran')
    parser.add_argument(
        '--long-epochs', type=int, default=240,
        help='cross-entropy\'s compute-matched length')
    parser.add_argument(
        '--results-dir', default=str(ROOT / 'docs/results/cifar100_study'))
    parser.add_argument(
        '--cost', default=None,
        help='the cost file (default: docs/results/cost/cost_<regime>.json '
        'of the study\'s regime, without its length)')
    parser.add_argument(
        '--update-docs', action='store_true',
        help='write the blocks into docs/results.md between their markers')
    args = parser.parse_args(argv)
    if args.long_epochs <= args.epochs:
        parser.error(f'--long-epochs ({args.long_epochs}) must be longer '
                     f'than --epochs ({args.epochs}).')
    return args


def regime_results(args: argparse.Namespace, epochs: int) -> dict:
    """{method: [result, ...]} of the study's regime at ``epochs``."""
    return load_results(argparse.Namespace(
        model=args.model, fraction=args.fraction, epochs=epochs, holdout=0.0,
        precision=args.precision, results_dir=args.results_dir))


def cost_path(args: argparse.Namespace) -> Path:
    """The cost file of the study's regime (the cost of an epoch does not
    depend on how many there are)."""
    if args.cost:
        return Path(args.cost)
    precision = '' if args.precision == 'fp32' else f'_{args.precision}'
    return (ROOT / 'docs/results/cost' /
            f'cost_{args.model}_{args.fraction:g}frac{precision}.json')


def ratio(record: dict, method: str, figure: str) -> float:
    """``method``'s ``figure`` over the reference method's in a cost
    file."""
    methods = record['methods']
    return methods[method][figure] / methods[record['reference']][figure]


def cost_table(record: dict) -> list:
    """Markdown lines of a cost file: a caption with the command and the
    device, and every figure beside its ratio to the reference method."""
    reference = record['reference']
    lines = [
        f'Measured side by side on {record["device"]}, {record["date"]} '
        f'(medians of {record["repeats"]} interleaved training steps of '
        f'each; the ratios are the result, the seconds this machine\'s):',
        '', '```bash', record['command'], '```', '',
        f'| method | s / training epoch | x {reference} | training GFLOPs'
        f' / image | x {reference} | peak step memory (MB) | x {reference} '
        f'| past-prediction store (MB) |', '|---|---|---|---|---|---|---|---|'
    ]
    for method, m in record['methods'].items():
        lines.append(
            f'| {method} | {m["s_per_epoch"]:.1f} | '
            f'{ratio(record, method, "s_per_epoch"):.2f} | '
            f'{m["train_gflops_per_image"]:.3f} | '
            f'{ratio(record, method, "train_gflops_per_image"):.2f} | '
            f'{m["peak_step_mb"]:.0f} | '
            f'{ratio(record, method, "peak_step_mb"):.2f} | '
            f'{m["store_mb"]:.0f} |')
    return lines


def difference_words(difference: dict, name: str) -> str:
    """``+a ± b (n seeds)`` and the verdict against ``name``, or how many
    seeds are missing for one."""
    std = f' ± {difference["std"]:.2f}' if 'std' in difference else ''
    seeds = difference['seeds']
    words = f'{difference["mean"]:+.2f}{std} ({seeds} seed' \
        f'{"s" * (seeds > 1)})'
    verdict = verdict_of(difference)
    if verdict == 'no verdict':
        return f'{words}; {seeds} of {VERDICT_SEEDS} seeds, no verdict yet'
    if verdict == 'within the spread':
        return (f'{words}; **within the seed spread of {name}** (spread '
                f'{difference["spread"]:.2f})')
    return (f'{words}; **{verdict} {name}** (spread '
            f'{difference["spread"]:.2f})')


def by_seed_table(columns: dict) -> list:
    """Markdown rows of last-epoch test top-1 by seed, one column per
    ``{heading: runs}``, and their mean ± std."""
    values = {heading: {r['seed']: r['last']['top1'] for r in runs}
              for heading, runs in columns.items()}
    seeds = sorted(set().union(*values.values()))
    lines = ['| seed | ' + ' | '.join(columns) + ' |',
             '|---|' + '---|' * len(columns)]
    for seed in seeds:
        lines.append(f'| {seed} | ' + ' | '.join(
            f'{v[seed]:.2f}' if seed in v else '-'
            for v in values.values()) + ' |')

    def mean_std(v):
        if len(v) < 2:
            return '-'
        return (f'{statistics.mean(v.values()):.2f} ± '
                f'{statistics.stdev(v.values()):.2f}')

    lines.append('| mean ± std | ' + ' | '.join(
        mean_std(v) for v in values.values()) + ' |')
    return lines


def last_top1(result: dict) -> float:
    return result['last']['top1']


def compute_matched_block(args: argparse.Namespace, short: dict, long: dict,
                          cost: dict) -> list:
    """LSSKD at ``args.epochs`` against cross-entropy at
    ``args.long_epochs``, paired by seed, with their measured cost."""
    ce_short, ce_long = short.get('ce', []), long.get('ce', [])
    lsskd = short.get('lsskd', [])
    short_name, long_name = (f'{args.epochs} epochs',
                             f'{args.long_epochs} epochs')
    lines = [
        f'LSSKD at {short_name} against cross-entropy given '
        f'{args.long_epochs / args.epochs:g} times the epochs ({args.model},'
        f' {args.fraction:g} of every class, {args.precision}; test top-1 '
        f'at the last epoch; generated by '
        f'`tools/benchmarks/cifar100_study_compute.py` from '
        f'`{os.path.relpath(args.results_dir, ROOT)}/`):', ''
    ] + by_seed_table({
        f'CE, {short_name}': ce_short,
        f'CE, {long_name}': ce_long,
        f'LSSKD, {short_name}': lsskd,
    }) + ['']
    if cost and 'lsskd' in cost['methods']:
        time = ratio(cost, 'lsskd', 's_per_epoch') * args.epochs / \
            args.long_epochs
        flops = ratio(cost, 'lsskd', 'train_gflops_per_image') * \
            args.epochs / args.long_epochs
        lines.append(
            f'- Cost of the runs compared, from the cost table: LSSKD for '
            f'{short_name} takes {time:.2f} times the training time and '
            f'{flops:.2f} times the training FLOPs of cross-entropy for '
            f'{long_name}.')
    if not ce_long:
        lines.append(f'- Cross-entropy at {long_name}: no run finished '
                     f'yet.')
        return lines
    gain = paired_difference(ce_long, ce_short, last_top1)
    lines.append(f'- Cross-entropy from {short_name} to {long_name}: '
                 f'{difference_words(gain, f"cross-entropy at {short_name}")}'
                 '.')
    matched = paired_difference(lsskd, ce_long, last_top1)
    if matched['seeds']:
        lines.append(
            f'- LSSKD at {short_name} minus cross-entropy at {long_name}: '
            f'{difference_words(matched, f"cross-entropy at {long_name}")}.')
    return lines


def label_smoothing_block(args: argparse.Namespace, short: dict) -> list:
    """Label smoothing against cross-entropy and against LSSKD at
    ``args.epochs``, paired by seed."""
    lbs = short.get('lbs', [])
    lines = [
        f'{LABELS["lbs"]} at {args.epochs} epochs ({args.model}, '
        f'{args.fraction:g} of every class, {args.precision}; test top-1 at '
        f'the last epoch; generated by '
        f'`tools/benchmarks/cifar100_study_compute.py`):', ''
    ] + by_seed_table({
        'CE': short.get('ce', []),
        'label smoothing': lbs,
        'LSSKD': short.get('lsskd', []),
    }) + ['']
    if not lbs:
        return lines + ['- Label smoothing: no run finished yet.']
    for reference, name in (('ce', 'cross-entropy'),
                            ('lsskd', "the paper's LSSKD")):
        difference = paired_difference(lbs, short.get(reference, []),
                                       last_top1)
        if difference['seeds']:
            lines.append(f'- Label smoothing minus {name}: '
                         f'{difference_words(difference, name)}.')
    return lines


def markers(block: str, args: argparse.Namespace) -> tuple:
    """The begin and end markers of ``block`` in docs/results.md."""
    name = f'{block} {args.model}_{args.fraction:g}frac_{args.precision}'
    return f'<!-- {name}: begin -->', f'<!-- {name}: end -->'


def blocks(args: argparse.Namespace) -> dict:
    """{block name: markdown lines} of the three blocks."""
    short = regime_results(args, args.epochs)
    long = regime_results(args, args.long_epochs)
    path = cost_path(args)
    cost = json.loads(path.read_text()) if path.exists() else None
    return {
        COST: cost_table(cost) if cost else [
            f'Not measured yet: `{os.path.relpath(path, ROOT)}` does not '
            f'exist (`tools/benchmarks/cifar100_study_cost.py` writes it).'
        ],
        COMPUTE_MATCHED: compute_matched_block(args, short, long, cost),
        LABEL_SMOOTHING: label_smoothing_block(args, short),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    for name, lines in blocks(args).items():
        print('\n'.join(lines) + '\n')
        if args.update_docs:
            write_block(RESULTS_PAGE, *markers(name, args), lines)


if __name__ == '__main__':
    main()
