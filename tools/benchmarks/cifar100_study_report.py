"""The CIFAR-100 study's report, built from its result files alone.

The table (last epoch, mean and standard deviation over seeds, the best
epoch beside it, labelled, and the difference to cross-entropy paired by
seed), the verdicts (a difference counts only with ``VERDICT_SEEDS`` seeds
and when larger than every seed spread involved), their summary of
them, the past-prediction table and the plot; ``update_docs`` writes the
blocks into docs/results.md between their markers.
"""
import argparse
import itertools
import json
import os
import re
import statistics
from pathlib import Path
from typing import Optional

from cifar100_study_methods import (DIAGNOSTIC_METHODS,  # beside this script
                                    LABELS, ROOT, regime, result_path,
                                    scaled_milestones)

RESULTS_PAGE = ROOT / 'docs/results.md'
# The generated blocks, between markers named after them and the regime:
# the table, the verdict and the past-prediction table in docs/results.md,
# the verdict's summary of the settled methods, all in docs/results.md.
TABLE, VERDICT, PAST, SUMMARY, BY_SEED = ('cifar100-study-table',
                                          'cifar100-study-verdict',
                                          'past-prediction-table',
                                          'cifar100-study-summary',
                                          'cifar100-study-by-seed')
# The regime the docs showed first: its markers carry no regime.
FIRST_REGIME = 'resnet20_0.2frac_12e'
# What tools/analysis_tools/past_prediction_quality.py measured in the
# runs' final checkpoints, one JSON file per run.
PAST_PREDICTIONS_DIR = ROOT / 'docs/results/past_predictions'
# A difference to cross-entropy is a verdict only with this many seeds.
VERDICT_SEEDS = 3


def markers(block: str, args: argparse.Namespace) -> tuple:
    """The begin and end markers of a generated ``block`` of the regime."""
    name = block if regime(args) == FIRST_REGIME else \
        f'{block} {regime(args)}'
    return f'<!-- {name}: begin -->', f'<!-- {name}: end -->'


def mean_std(values) -> str:
    """``mean ± std`` of the values that exist, ``-`` when none does."""
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}'


def timing_loads(result: dict) -> set:
    """What each part of a run was timed beside: ``(device, threads,
    jobs)``, with ``None`` where the result does not record it (parts
    started before the study noted their settings)."""
    device = result.get('device')
    if 'part_timings' in result:
        return {(device, p['threads'], p['jobs'])
                for p in result['part_timings']}
    if result.get('parts', 1) == 1:
        return {(device, result.get('threads'), result.get('jobs'))}
    # The file's threads and jobs are its last part's only.
    return {(device, None, None)}


def timing_header(results: dict) -> str:
    """The s/iter column's heading: its figures compare only when every
    part of every run was timed on one device, threads and jobs, known."""
    loads = set().union(*(timing_loads(r) for runs in results.values()
                          for r in runs))
    if len(loads) == 1 and None not in next(iter(loads)):
        _, threads, jobs = next(iter(loads))
        return (f's/iter (median; every run on {threads} thread(s), '
                f'{jobs} run(s) at once)')
    return ('s/iter (median; runs timed under other or unrecorded loads: '
            'not comparable)')


def table(results: dict) -> list:
    """Markdown rows: last epoch (mean ± std over seeds), the best epoch
    beside it, and the difference to cross-entropy paired by seed."""
    ce = {r['seed']: r['last']['top1'] for r in results.get('ce', [])}
    num_branches = max((len(r['last']['branches_top1'])
                        for runs in results.values() for r in runs),
                       default=0)
    holdout = any('test_after_training' in r for runs in results.values()
                  for r in runs)
    selection = any('selection' in r for runs in results.values()
                    for r in runs)
    fit = any('train_fit' in r for runs in results.values() for r in runs)
    on = 'held-out' if holdout else 'test'
    header = ['method', 'seeds', f'{on} top-1, last epoch',
              f'{on} top-5, last epoch',
              'test top-1 after training' if holdout else
              'top-1, best test epoch (not a result)',
              'last top-1 minus CE, paired'] + [
                  'top-1 on unused training images (chosen on)'
              ] * selection + [
                  'top-1 on its training images (how far it fitted them)'
              ] * fit + [
                  f'branch {s} top-1' for s in range(1, num_branches + 1)
              ] + [timing_header(results)]
    rows = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for method, runs in results.items():
        paired = [r['last']['top1'] - ce[r['seed']] for r in runs
                  if r['seed'] in ce]
        after = [r['test_after_training']['top1'] if holdout else
                 (r['best_on_test'] or {}).get('top1') for r in runs]
        row = [
            LABELS[method], ', '.join(str(r['seed']) for r in runs),
            mean_std(r['last']['top1'] for r in runs),
            mean_std(r['last']['top5'] for r in runs),
            # A derived run has no best epoch: a mean over the other seeds
            # alone would pass for all of them.
            '-' if None in after else mean_std(after),
            mean_std(paired) if paired and method != 'ce' else '-'
        ] + [
            mean_std(r.get('selection', {}).get('top1') for r in runs)
        ] * selection + [
            mean_std(r.get('train_fit', {}).get('top1') for r in runs)
        ] * fit + [
            mean_std(r['last']['branches_top1'][f'aux/branch{s}_top1']
                     for r in runs)
            if f'aux/branch{s}_top1' in runs[0]['last']['branches_top1']
            else '-' for s in range(1, num_branches + 1)
        ] + [f"{statistics.median(r['s_per_iter'] for r in runs):.3f}"]
        rows.append('| ' + ' | '.join(row) + ' |')
    return rows


def paired_difference(runs: list, reference_runs: list, figure) -> dict:
    """The difference of ``figure(result)`` to the reference method's,
    paired by seed.

    Returns:
        dict: ``seeds``, ``mean`` and, with two seeds or more, ``std`` (of
        the paired differences) and ``spread``: the largest seed-to-seed
        standard deviation involved (of the differences, of the method's
        figures, of the reference's), the bar a difference must clear.
    """
    reference = {r['seed']: figure(r) for r in reference_runs}
    pairs = [(figure(r), reference[r['seed']]) for r in runs
             if r['seed'] in reference and figure(r) is not None
             and reference[r['seed']] is not None]
    if not pairs:
        return dict(seeds=0)
    diffs = [a - b for a, b in pairs]
    record = dict(seeds=len(pairs), mean=statistics.mean(diffs))
    if len(pairs) > 1:
        record['std'] = statistics.stdev(diffs)
        record['spread'] = max(
            statistics.stdev(diffs), statistics.stdev(a for a, _ in pairs),
            statistics.stdev(b for _, b in pairs))
    return record


def verdict_of(difference: dict) -> str:
    """``beats``, ``trails``, ``within the spread``, or no verdict (fewer
    than ``VERDICT_SEEDS`` paired seeds)."""
    if difference['seeds'] < VERDICT_SEEDS:
        return 'no verdict'
    if abs(difference['mean']) <= difference['spread']:
        return 'within the spread'
    return 'beats' if difference['mean'] > 0 else 'trails'


# How the verdicts name the methods they compare with.
REFERENCE_NAMES = {
    'ce': 'cross-entropy', 'lsskd': "the paper's LSSKD", 'pskd': 'PS-KD',
    'ce-coc': 'cross-entropy with Cutout and CutMix'}
COC = '-coc'


def compared_with(reference: str, method: str) -> bool:
    """Whether ``method`` is one of the ``reference`` method's variants:
    every method is cross-entropy's; the Cutout + CutMix runs are also
    cross-entropy's with the same augmentation; an option or ablation is
    its method's (a Cutout + CutMix run is none)."""
    if reference == 'ce':
        return True
    if reference == 'ce' + COC:
        return method.endswith(COC)
    # A method with Cutout and CutMix is no option of the method without.
    return method.startswith(f'{reference}-') and not method.endswith(COC)


def augmentation_effects(results: dict) -> list:
    """Markdown bullets, one per method run with Cutout and CutMix whose
    method also ran without them: the first against the second, paired by
    seed (what the paper's Table III reports as the COC gain)."""
    lines = []
    for method in results:
        base = method[:-len(COC)]
        if method.endswith(COC) and base in results:
            lines += verdicts({base: results[base], method: results[method]},
                              reference=base, variants=[method])
    return lines


def verdicts(results: dict, reference: str = 'ce',
             variants: Optional[list] = None, compact: bool = False) -> list:
    """Markdown bullets, one per method: its deployed classifier against
    the ``reference`` method's, paired by seed, on the test set (last
    epoch) and on the unused training images (where options are chosen),
    with the verdict; ``compact`` words them for the summary.

    A method beats or trails the reference only with ``VERDICT_SEEDS``
    seeds and a mean paired difference larger than every seed-to-seed
    standard deviation involved. Against another method than ``'ce'``
    only that method's variants are compared (``'lsskd'``: its ablations
    and options; ``'pskd'``: its uniform-past control; ``'ce-coc'``: the
    methods with Cutout and CutMix), unless ``variants`` names the methods
    to compare.
    """
    reference_runs = results.get(reference, [])
    name = REFERENCE_NAMES[reference]
    where = ('on the test set', 'on unused training images') if compact \
        else ('on the test set (last epoch)', 'on the unused training images')
    lines = []
    for method, runs in results.items():
        compared = (method in variants if variants is not None else
                    compared_with(reference, method))
        if method == reference or not reference_runs or not compared:
            continue
        test = paired_difference(runs, reference_runs,
                                 lambda r: r['last']['top1'])
        if not test['seeds']:
            continue
        chosen = paired_difference(
            runs, reference_runs,
            lambda r: r.get('selection', {}).get('top1'))

        def figure(d):
            std = f' ± {d["std"]:.2f}' if 'std' in d else ''
            return f'{d["mean"]:+.2f}{std}'

        parts = [f'{figure(test)} {where[0]}']
        if chosen['seeds']:
            parts.append(f'{figure(chosen)} {where[1]}')
        seeds = test['seeds']
        if seeds < VERDICT_SEEDS:
            said = (f'{seeds} seed{"s" * (seeds > 1)} of '
                    f'{VERDICT_SEEDS}: no verdict yet')
        else:
            on_test, on_chosen = verdict_of(test), verdict_of(chosen) \
                if chosen['seeds'] else None
            said = (f'**{on_test} {name}**' if on_test != 'within the '
                    'spread' else f'**within the seed spread of {name}**')
            if compact and on_chosen == on_test:
                said += (f' on both (spreads {test["spread"]:.2f}, '
                         f'{chosen["spread"]:.2f})')
            elif compact:
                said += f' (spread {test["spread"]:.2f})'
                if on_chosen:
                    said += (f', {on_chosen} on unused training images '
                             f'({chosen["spread"]:.2f})')
            else:
                said += f' on the test set (spread {test["spread"]:.2f})'
                if on_chosen:
                    said += (f', {on_chosen} on the unused training images '
                             f'(spread {chosen["spread"]:.2f})')
        lines.append(f'- {LABELS[method]}: {", ".join(parts)}; {said}.')
    return lines


def legend_label(method: str, seeds: int) -> str:
    """A method's name in a plot legend, with how many seeds it averages."""
    return f'{LABELS[method]} ({seeds} seed{"s" if seeds > 1 else ""})'


def plot_panels(methods: list) -> list:
    """[(title, methods)]: the plot's panels, grouped as the verdicts
    compare the methods: the methods and their diagnostics; LSSKD's
    ablations and options, beside the paper's LSSKD; the runs with Cutout
    and CutMix. Every panel shows cross-entropy (when run) as reference;
    one with nothing else to show is left out."""
    options = [m for m in methods if compared_with('lsskd', m)]
    coc = [m for m in methods if m.endswith(COC)]
    reference = [m for m in methods if m == 'ce']
    first = [m for m in methods if m not in options + coc]
    panels = [('Methods and diagnostics', first)] if first else []
    if options:
        panels.append(("LSSKD's ablations and options", reference + [
            m for m in methods if m == 'lsskd'] + options))
    if coc:
        panels.append(('With Cutout and CutMix', reference + coc))
    return panels


def plot(results: dict, path: Path) -> None:
    """Test top-1 across epochs, mean over seeds, one panel per group of
    ``plot_panels``: every method's final classifier, and the branches of
    the paper's LSSKD in the first panel."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = plot_panels(list(results))
    fig, axes = plt.subplots(1, len(panels), squeeze=False, sharey=True,
                             figsize=(6 * len(panels), 4.5))
    # Cross-entropy (the reference) and the paper's LSSKD keep one colour
    # in every panel; the others take distinct colours within theirs.
    fixed = dict(ce='black', lsskd='tab:orange')
    palette = [c for c in (*plt.cm.tab10.colors, *plt.cm.Dark2.colors)
               if c != plt.cm.tab10.colors[1]]
    for ax, (title, methods) in zip(axes[0], panels):
        others = itertools.cycle(palette)
        for method in methods:
            runs = results[method]
            epochs = [r['epoch'] for r in runs[0]['curve']]
            colour = fixed.get(method) or next(others)

            def mean_curve(key):
                return [
                    statistics.mean(r['curve'][i][key] for r in runs)
                    for i in range(len(epochs))
                ]

            ax.plot(epochs, mean_curve('accuracy/top1'), marker='o',
                    color=colour, linewidth=2,
                    label=legend_label(method, len(runs)))
            if method == 'lsskd' and ax is axes[0][0]:
                branches = sorted(k for k in runs[0]['curve'][-1]
                                  if k.startswith('aux/branch'))
                # Deeper branches darker.
                for depth, key in enumerate(branches, 1):
                    s = key[len('aux/branch'):].split('_')[0]
                    ax.plot(epochs, mean_curve(key), linestyle='--',
                            color=colour, alpha=depth / (len(branches) + 1),
                            label=f'{LABELS[method]} branch {s}')
        ax.set_title(title)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
        # Below the axes: a legend inside would hide the curves.
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(0, -0.12))
    axes[0][0].set_ylabel('CIFAR-100 test top-1 (%)')
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches='tight')


def write_block(page: Path, begin: str, end: str, lines: list) -> None:
    """Replace what lies between the ``begin`` and ``end`` markers of
    ``page`` with ``lines``."""
    text = page.read_text()
    if begin not in text or end not in text:
        raise SystemExit(f'{page} has no {begin} ... {end} block to write '
                         f'the study into.')
    block = '\n'.join([begin] + lines + [end])
    text = re.sub(re.escape(begin) + '.*?' + re.escape(end),
                  lambda _: block, text, flags=re.S)
    page.write_text(text)


def settled(results: dict) -> dict:
    """The results the summary covers: cross-entropy's, and those of
    every method (no diagnostic) that has the seeds a verdict needs."""
    return {
        method: runs
        for method, runs in results.items()
        if method == 'ce' or (method not in DIAGNOSTIC_METHODS
                              and len(runs) >= VERDICT_SEEDS)
    }


def report(args: argparse.Namespace, results: dict) -> tuple:
    """Markdown lines of the table (with its caption), of the verdict and
    of its summary: the methods, not the diagnostics, that
    have every seed a verdict needs, against cross-entropy."""
    evaluated = (f'evaluated on a held-out {args.holdout:g} of it during '
                 f'training and on the full test set after'
                 if args.holdout else 'full test set')
    # Float32 regimes say nothing of their precision (they came first).
    epochs = f'{args.epochs} epochs' + (
        ' in bfloat16' if args.precision == 'bf16' else '')
    caption = (f'{args.model}, {args.fraction:g} of every class, '
               f'{epochs}, {evaluated}; mean ± standard '
               f'deviation over seeds; built by '
               f'`tools/benchmarks/cifar100_cpu_study.py` from '
               f'`{os.path.relpath(args.results_dir, ROOT)}/`.')
    regime_words = (f'{args.model}, {args.fraction:g} of every class, '
                    f'{epochs}; a verdict needs {VERDICT_SEEDS} '
                    f'seeds and a mean difference larger than every seed '
                    f'spread involved; written by the study script from its '
                    f'result files')
    against_ce = f'Against cross-entropy, paired by seed ({regime_words}):'
    against_coc = ('With Cutout and CutMix, against cross-entropy with '
                   'them, paired by seed:')
    verdict = [against_ce, ''] + verdicts(results)
    summary = [against_ce, ''] + (
        verdicts(settled(results), compact=True)
        or [f'- No method has the {VERDICT_SEEDS} seeds of a verdict yet.'])
    # What the augmentation does to a method is read against cross-entropy
    # with it, in the summary too.
    coc = verdicts(settled(results), reference='ce' + COC, compact=True)
    if coc:
        summary += ['', against_coc, ''] + coc
    for reference, heading in (
            ('ce' + COC, against_coc),
            ('lsskd', "LSSKD's ablations and options against the paper's "
             'LSSKD, paired by seed:'),
            ('pskd', "PS-KD's control against PS-KD, paired by seed:")):
        variants = verdicts(results, reference=reference)
        if variants:
            verdict += ['', heading, ''] + variants
    effects = augmentation_effects(results)
    if effects:
        verdict += ['', 'What Cutout and CutMix do to each method: with '
                    'them against the same method without them, paired by '
                    'seed:', ''] + effects
    return [caption, ''] + table(results), verdict, summary


def past_prediction_table(args: argparse.Namespace, results: dict) -> list:
    """Markdown rows, one per run whose final checkpoint
    ``past_prediction_quality.py`` measured (a file in
    ``PAST_PREDICTIONS_DIR`` named as the run's result, with
    ``_alpha{alpha}`` added), beside the run's deployed top-1; empty when
    no run was measured."""
    rows = []
    for method, runs in results.items():
        for run in runs:
            stem = result_path(args, method, run['seed']).stem
            for path in sorted(PAST_PREDICTIONS_DIR.glob(
                    f'{stem}_alpha*.json')):
                quality = json.loads(path.read_text())
                weights = f'alpha_T {quality["alpha"]:g}'
                if quality['beta']:
                    weights += f', branch share {quality["beta"]:g}'
                rows.append(
                    f'| {LABELS[method]} | {run["seed"]} | '
                    f'{run["last"]["top1"]:.2f} | {quality["top1"]:.2f} % | '
                    f'{quality["true_class_probability"]:.3f} | '
                    f'{quality["target_true_mass"]:.3f} ({weights}) | '
                    f'{quality["target_wrong"]:.2f} % |')
    if not rows:
        return []
    return [
        '| run | seed | deployed top-1 (test, last epoch) | stored '
        'predictions: top-1 on the training images | mean true-class '
        'probability | target at alpha_T: mass on the label | target\'s '
        'largest entry not the label |', '|---|---|---|---|---|---|---|'
    ] + rows


def lead_by_seed_table(args: argparse.Namespace, results: dict) -> list:
    """Markdown lines: every method against cross-entropy at each seed
    both ran, at the last epoch and over the schedule (while the first
    learning rate lasts, and after its first drop), from the curves the
    result files record."""
    drop = scaled_milestones(args.epochs)[0]
    reference = {r['seed']: r for r in results.get('ce', [])}
    rows = []
    for method, runs in results.items():
        for run in runs:
            ce = reference.get(run['seed'])
            if method == 'ce' or ce is None:
                continue
            ce_curve = {e['epoch']: e['accuracy/top1'] for e in ce['curve']}
            lead = {e['epoch']: e['accuracy/top1'] - ce_curve[e['epoch']]
                    for e in run['curve'] if e['epoch'] in ce_curve}
            before = [lead[e] for e in sorted(lead) if e <= drop]
            after = [lead[e] for e in sorted(lead) if e > drop]

            def span(values):
                return (f'{min(values):+.2f} to {max(values):+.2f}'
                        if values else '-')

            last_before = max((e for e in lead if e <= drop), default=None)
            at_last = (f' ({lead[last_before]:+.2f} at epoch {last_before})'
                       if last_before else '')
            rows.append(
                f'| {LABELS[method]} | {run["seed"]} | '
                f'{run["last"]["top1"]:.2f} / {ce["last"]["top1"]:.2f} | '
                f'{run["last"]["top1"] - ce["last"]["top1"]:+.2f} | '
                f'{span(before)}{at_last} | {span(after)} |')
    if not rows:
        return []
    return [
        f'Each method minus cross-entropy at the same seed, test top-1 '
        f'(the learning rate first drops after epoch {drop}; from the '
        f'curves in `{os.path.relpath(args.results_dir, ROOT)}/`):', '',
        '| method | seed | last epoch: top-1, method / CE | minus CE, last '
        'epoch | minus CE at the first learning rate: range over '
        'evaluations (at the last) | minus CE after the first drop: range '
        'over evaluations |', '|---|---|---|---|---|---|'
    ] + rows


def update_docs(args: argparse.Namespace, table_block: list,
                verdict_block: list, summary_block: list,
                past_block: list, by_seed_block: list) -> None:
    """Write the table, the verdict, its summary (the settled methods),
    the past-prediction table and the by-seed table into docs/results.md,
    between their markers (the README's glance table is
    cifar100_study_compute.py's)."""
    write_block(RESULTS_PAGE, *markers(TABLE, args), table_block)
    write_block(RESULTS_PAGE, *markers(VERDICT, args), verdict_block)
    write_block(RESULTS_PAGE, *markers(SUMMARY, args), summary_block)
    write_block(RESULTS_PAGE, *markers(PAST, args), past_block)
    write_block(RESULTS_PAGE, *markers(BY_SEED, args), by_seed_block)
