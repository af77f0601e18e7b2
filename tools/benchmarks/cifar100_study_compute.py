"""Is LSSKD worth its compute? The CIFAR-100 study's answer, built from its
result files and its cost file alone.

The README's table at a glance: at each length studied, cross-entropy,
PS-KD, LSSKD, its best variant (chosen on the unused training images,
never the test set), label smoothing and cross-entropy trained as long as
LSSKD's views where they ran, with seeds, spread, the paired difference to
cross-entropy, its verdict, and the training time per run relative to
cross-entropy at that length where the cost was measured in the length's
precision; and the README's sentence on what LSSKD's cost buys (LSSKD
against cross-entropy given its compute, in words, once three seeds
decide it). Three blocks of docs/results.md:

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

And one of docs/benchmarks.md: bfloat16 against float32 at the first
length, the one the study trained in both precisions.

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

from cifar100_study_methods import (DIAGNOSTIC_METHODS,  # beside this
                                    LABELS, METHODS, OVERRIDES, RESULTS_DIR,
                                    ROOT, STUDY_CONFIGS, StudyRow,
                                    load_results, regime)
from cifar100_study_report import (RESULTS_PAGE, VERDICT_SEEDS,
                                   paired_difference, verdict_of,
                                   write_block)

COST, COMPUTE_MATCHED, LABEL_SMOOTHING = ('cifar100-study-cost',
                                          'compute-matched',
                                          'label-smoothing')
PRECISION_CHECK = 'precision-check'
README = ROOT / 'README.md'
# Where bfloat16 training's accuracy is set against float32's.
BENCHMARKS_PAGE = ROOT / 'docs/benchmarks.md'
# The cost table is also the first table of the page a user reads before
# training.
COST_PAGE = ROOT / 'docs/cost.md'
GLANCE = 'results-at-a-glance'
# The study's lengths, each in the precision it was trained in.
LENGTHS = ((12, 'fp32'), (60, 'bf16'))


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
        '--results-dir', default=str(RESULTS_DIR))
    parser.add_argument(
        '--cost', default=None,
        help='the cost file (default: docs/results/cost/cost_<regime>.json '
        'of the study\'s regime, without its length)')
    parser.add_argument(
        '--update-docs', action='store_true',
        help='write the blocks into docs/results.md (the cost table into '
        'docs/cost.md too) and the table at a glance into the README, '
        'between their markers')
    args = parser.parse_args(argv)
    if args.long_epochs <= args.epochs:
        parser.error(f'--long-epochs ({args.long_epochs}) must be longer '
                     f'than --epochs ({args.epochs}).')
    return args


def regime_results(args: argparse.Namespace, epochs: int,
                   precision: str = None) -> dict:
    """{method: [result, ...]} of the study's regime at ``epochs`` (in the
    study's precision unless given)."""
    return load_results(argparse.Namespace(
        model=args.model, fraction=args.fraction, epochs=epochs, holdout=0.0,
        precision=precision or args.precision,
        results_dir=args.results_dir))


def cost_path(args: argparse.Namespace, precision: str = None) -> Path:
    """The cost file of the study's regime (the cost of an epoch does not
    depend on how many there are), in the study's precision unless
    given."""
    if args.cost and precision in (None, args.precision):
        return Path(args.cost)
    precision = precision or args.precision
    precision = '' if precision == 'fp32' else f'_{precision}'
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


def precision_block(args: argparse.Namespace, epochs: int) -> list:
    """bfloat16 against float32 at ``epochs``, a length the study trained
    in both: each method's runs by seed, and where each bfloat16 run lies
    against float32's seeds."""
    fp32, bf16 = (regime_results(args, epochs, precision)
                  for precision in ('fp32', 'bf16'))
    methods = [method for method in bf16 if method in fp32]
    columns = {}
    for method in methods:
        columns[f'{LABELS[method]}, float32'] = fp32[method]
        columns[f'{LABELS[method]}, bfloat16'] = bf16[method]
    lines = [
        f'{args.model}, {args.fraction:g} of every class, {epochs} epochs; '
        f'test top-1 at the last epoch; generated by '
        f'`tools/benchmarks/cifar100_study_compute.py` from '
        f'`{os.path.relpath(args.results_dir, ROOT)}/`:', ''
    ] + by_seed_table(columns) + ['']
    for method in methods:
        float32 = {r['seed']: last_top1(r) for r in fp32[method]}
        low, high = min(float32.values()), max(float32.values())
        for run in bf16[method]:
            top1 = last_top1(run)
            where = 'within' if low <= top1 <= high else 'outside'
            same_seed = (f'; minus float32 at that seed: '
                         f'{top1 - float32[run["seed"]]:+.2f}'
                         if run['seed'] in float32 else '')
            lines.append(
                f'- {LABELS[method]}, bfloat16, seed {run["seed"]}: '
                f'{top1:.2f}, {where} float32\'s {len(float32)} seeds '
                f'({low:.2f} to {high:.2f}){same_seed}.')
    return lines


def best_variant(results: dict) -> str:
    """LSSKD's option or ablation (no diagnostic, none with Cutout and
    CutMix) with the seeds of a verdict and the best mean top-1 on the
    unused training images, where options are chosen; None if none has
    them."""
    chosen = {}
    for method, runs in results.items():
        figures = [r.get('selection', {}).get('top1') for r in runs]
        if (method.startswith('lsskd-') and method not in DIAGNOSTIC_METHODS
                and not method.endswith('-coc')
                and len(runs) >= VERDICT_SEEDS and None not in figures):
            chosen[method] = statistics.mean(figures)
    return max(chosen, key=chosen.get) if chosen else None


def glance_row(name: str, runs: list, reference: list,
               time: str) -> str:
    """One row of the glance table."""
    top1 = [r['last']['top1'] for r in runs]
    mean = f'{statistics.mean(top1):.2f}' + (
        f' ± {statistics.stdev(top1):.2f}' if len(top1) > 1 else '')
    difference = paired_difference(runs, reference, last_top1)
    if runs is reference or not difference['seeds']:
        paired, verdict = '-', '-'
    else:
        std = f' ± {difference["std"]:.2f}' if 'std' in difference else ''
        paired = f'{difference["mean"]:+.2f}{std}'
        verdict = verdict_of(difference)
        verdict = (f'no verdict ({difference["seeds"]} of {VERDICT_SEEDS} '
                   f'seeds)' if verdict == 'no verdict' else
                   f'**{verdict}**')
    return (f'| {name} | {len(runs)} | {mean} | {paired} | {verdict} | '
            f'{time} |')


def glance_table(args: argparse.Namespace) -> list:
    """The README's results at a glance, one group of rows per length."""
    lines = [
        '| epochs | method | seeds | test top-1 | minus CE, paired | '
        'verdict | training time x CE |', '|---|---|---|---|---|---|---|'
    ]
    for epochs, precision in LENGTHS:
        results = regime_results(args, epochs, precision)
        reference = results.get('ce', [])
        path = cost_path(args, precision)
        cost = json.loads(path.read_text()) if path.exists() else None
        long = regime_results(args, args.long_epochs, precision).get('ce')
        rows = [('ce', results.get('ce'), epochs),
                ('pskd', results.get('pskd'), epochs),
                ('lsskd', results.get('lsskd'), epochs)]
        variant = best_variant(results)
        if variant:
            rows.append((variant, results[variant], epochs))
        if results.get('lbs'):
            rows.append(('lbs', results['lbs'], epochs))
        if long and epochs == args.epochs:
            rows.append(('ce', long, args.long_epochs))
        group = f'{epochs} ({precision})'
        for method, runs, length in rows:
            if not runs:
                continue
            name = LABELS[method]
            if method == variant:
                name = f'best variant: {name}'
            if length != epochs:
                name = f'{name}, {length} epochs'
            time = '-'
            if cost and method in cost['methods']:
                per_run = ratio(cost, method, 's_per_epoch') * length / epochs
                time = f'{per_run:.2f}'
            lines.append(f'| {group} ' + glance_row(
                name, runs, reference, time))
            group = ''
    lines += ['', 'Training time: seconds per run against cross-entropy '
              'trained as many epochs, from the cost table of '
              '[docs/results.md](docs/results.md#cost-of-a-training-epoch) '
              '(measured on a CPU in the length\'s precision; `-`: not '
              'measured in it). Generated by '
              '`tools/benchmarks/cifar100_study_compute.py --update-docs` '
              'from the result files.']
    return lines


# How the README words LSSKD against cross-entropy given its compute.
COMPUTE_MATCHED_WORDS = {
    'beats': 'LSSKD still beats it',
    'trails': 'LSSKD trails it: at this scale the same compute buys more as '
              'plain training',
    'within the spread': 'LSSKD is within the seed spread of it: at this '
                         'scale the same compute buys as much as plain '
                         'training',
}


def compute_matched_sentence(args: argparse.Namespace) -> list:
    """The README's sentence on what LSSKD's cost buys: LSSKD at
    ``args.epochs`` against cross-entropy at ``args.long_epochs``, paired
    by seed, and LSSKD's training time relative to that run."""
    lsskd = regime_results(args, args.epochs).get('lsskd', [])
    ce_long = regime_results(args, args.long_epochs).get('ce', [])
    path = cost_path(args)
    head = (f'Against cross-entropy trained '
            f'{args.long_epochs / args.epochs:g} times as long '
            f'({args.long_epochs} epochs, as many images through the '
            f'backbone')
    if path.exists():
        time = ratio(json.loads(path.read_text()), 'lsskd',
                     's_per_epoch') * args.epochs / args.long_epochs
        head += f'; LSSKD takes {time:.2f} times its training time'
    head += ')'
    matched = paired_difference(lsskd, ce_long, last_top1)
    if not matched['seeds']:
        return [f'{head}: no run finished yet.']
    verdict = verdict_of(matched)
    std = f' ± {matched["std"]:.2f}' if 'std' in matched else ''
    figure = f'{matched["mean"]:+.2f}{std}'
    if verdict == 'no verdict':
        return [f'{head}: LSSKD {figure} after {matched["seeds"]} of '
                f'{VERDICT_SEEDS} seeds, no verdict yet.']
    return [f'{head}: {COMPUTE_MATCHED_WORDS[verdict]} ({figure}, '
            f'{matched["seeds"]} seeds, paired).']


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


# The model-zoo pages: each config folder's README and its study methods.
ZOO = {
    'lsskd': [m for m in METHODS if m.startswith('lsskd')],
    'pskd': [m for m in METHODS if m.startswith('pskd')],
    'baselines': [m for m in METHODS if m.startswith(('ce', 'lbs'))],
}
ZOO_MARKERS = ('<!-- measured-results: begin -->',
               '<!-- measured-results: end -->')


def zoo_table(args: argparse.Namespace, methods: list) -> list:
    """Rows of a config folder's README: every run of its methods in the
    study, by length, the config that trains it (the study's own where one
    ships, else the shipped config the study shrank), its figures and its
    result files (no weights are published)."""
    lines = [
        '| config | regime | seeds | top-1 (%) | top-5 (%) | result files '
        '| weights |', '|---|---|---|---|---|---|---|'
    ]
    lengths = [*LENGTHS, (args.long_epochs, 'bf16')]
    for epochs, precision in lengths:
        results = regime_results(args, epochs, precision)
        name = regime(argparse.Namespace(
            model=args.model, fraction=args.fraction, epochs=epochs,
            holdout=0.0, precision=precision))
        for method in methods:
            runs = results.get(method)
            if not runs:
                continue
            # The study's own config where one ships; else the paper's
            # config the study shrank.
            config = STUDY_CONFIGS.get(
                StudyRow(method, args.model, args.fraction, epochs,
                         precision), METHODS[method].format(model=args.model))
            overrides = ''.join(f', `{key}={value}`' for key, value in
                                OVERRIDES.get(method, {}).items())

            def figure(key):
                values = [r['last'][key] for r in runs]
                if len(values) == 1:
                    return f'{values[0]:.2f}'
                return (f'{statistics.mean(values):.2f} ± '
                        f'{statistics.stdev(values):.2f}')

            files = (f'`{os.path.relpath(args.results_dir, ROOT)}/'
                     f'{method}_{name}_seed*.json`')
            lines.append(
                f'| [{Path(config).name}](../../{config}){overrides} '
                f'({LABELS[method]}) | {args.model}, {args.fraction:.0%} of '
                f'every class, {epochs} epochs, {precision} (CPU study) | '
                f'{", ".join(str(r["seed"]) for r in runs)} | '
                f'{figure("top1")} | {figure("top5")} | {files} | not '
                f'published |')
    return lines


def compute_matched_markers() -> tuple:
    return ('<!-- compute-matched-verdict: begin -->',
            '<!-- compute-matched-verdict: end -->')


def glance_markers() -> tuple:
    return (f'<!-- {GLANCE}: begin -->', f'<!-- {GLANCE}: end -->')


def main(argv=None) -> None:
    args = parse_args(argv)
    for name, lines in blocks(args).items():
        print('\n'.join(lines) + '\n')
        if args.update_docs:
            write_block(RESULTS_PAGE, *markers(name, args), lines)
            if name == COST:
                write_block(COST_PAGE, *markers(name, args), lines)
    precision = precision_block(args, LENGTHS[0][0])
    print('\n'.join(precision) + '\n')
    if args.update_docs:
        write_block(BENCHMARKS_PAGE, *markers(PRECISION_CHECK, args),
                    precision)
    glance = glance_table(args)
    print('\n'.join(glance))
    sentence = compute_matched_sentence(args)
    print('\n' + '\n'.join(sentence))
    if args.update_docs:
        write_block(README, *glance_markers(), glance)
        write_block(README, *compute_matched_markers(), sentence)
        for folder, methods in ZOO.items():
            write_block(ROOT / 'configs' / folder / 'README.md',
                        *ZOO_MARKERS, zoo_table(args, methods))


if __name__ == '__main__':
    main()
