"""Is LSSKD worth its compute: the cost benchmark measures every study
method from the study's own configs, and the compute-matched and
label-smoothing comparisons are built from result files alone, concluding
nothing from fewer than three seeds."""
import argparse
import json
import sys

import pytest
from conftest import ROOT, run_main

sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
sys.path.insert(0, str(ROOT / 'tools/analysis_tools'))


def test_cost_benchmark_measures_every_method_against_ce(
        tiny_cifar100, tmp_path, monkeypatch, capfd):
    out_file = tmp_path / 'cost.json'
    # float32: every CPU runs it at speed (the study refuses emulated bf16).
    run_main('tools/benchmarks/cifar100_study_cost.py', [
        tiny_cifar100 / 'cifar-100-python', '--fraction', '0.5',
        '--precision', 'fp32', '--repeats', '1', '--warmup', '0', '--out',
        out_file
    ], monkeypatch, capfd)
    record = json.loads(out_file.read_text())
    methods = record['methods']
    assert list(methods) == ['ce', 'lbs', 'pskd', 'lsskd', 'lsskd-no-past',
                             'ce, channels-last']
    assert record['reference'] == 'ce'
    assert record['command'].startswith(
        'python tools/benchmarks/cifar100_study_cost.py ')
    for figures in methods.values():
        assert figures['s_per_epoch'] == pytest.approx(
            figures['s_per_step'] * figures['steps_per_epoch'])
        assert figures['peak_step_mb'] > 0
    # A training step's FLOPs, forward and backward, are the arithmetic of
    # the method: label smoothing, PS-KD and the layout add none; LSSKD's
    # four views and three branches are 9.27 times a plain step (its
    # forward alone is 9.25 times, test_training_efficiency.py).
    plain = methods['ce']['train_gflops_per_image']
    for method in ('lbs', 'pskd', 'ce, channels-last'):
        assert methods[method]['train_gflops_per_image'] == \
            pytest.approx(plain)
    for method in ('lsskd', 'lsskd-no-past'):
        assert methods[method]['train_gflops_per_image'] / plain == \
            pytest.approx(9.27, abs=0.005)
    # Only the methods with past predictions hold a store: 8 training
    # images of 100 classes; LSSKD adds 3 branches x 4 views x 400 joint
    # classes, all float32.
    assert methods['ce']['store_mb'] == methods['lbs']['store_mb'] == 0
    assert methods['lsskd']['store_mb'] * 2**20 >= \
        8 * (100 + 3 * 4 * 400) * 4


def fake(method, seed, top1):
    return dict(method=method, seed=seed, precision='bf16',
                last=dict(top1=top1))


def write_results(folder, epochs, runs):
    folder.mkdir(exist_ok=True)
    for run in runs:
        (folder / f'{run["method"]}_resnet20_0.2frac_{epochs}e_bf16_seed'
         f'{run["seed"]}.json').write_text(json.dumps(run))


def cost_record():
    figures = dict(s_per_step=1.0, steps_per_epoch=10, peak_step_mb=50.0,
                   store_mb=0.0)
    return dict(
        reference='ce', device='a CPU', date='2026-12-07', repeats=3,
        command='python tools/benchmarks/cifar100_study_cost.py DATA',
        methods=dict(
            ce=dict(figures, s_per_epoch=10.0, train_gflops_per_image=0.25),
            lsskd=dict(figures, s_per_epoch=60.0,
                       train_gflops_per_image=2.25, peak_step_mb=300.0,
                       store_mb=180.0)))


def study_at_60_epochs(tmp_path):
    """CE (40, 41, 42) and LSSKD (45, 44, 46) at seeds 0-2, and a cost
    file: the results folder and the cost file."""
    results, cost = tmp_path / 'results', tmp_path / 'cost.json'
    cost.write_text(json.dumps(cost_record()))
    write_results(results, 60, [fake('ce', s, t) for s, t in
                                ((0, 40.0), (1, 41.0), (2, 42.0))])
    write_results(results, 60, [fake('lsskd', s, t) for s, t in
                                ((0, 45.0), (1, 44.0), (2, 46.0))])
    return results, cost


def compute_args(results, cost):
    from cifar100_study_compute import parse_args
    return parse_args(['--results-dir', str(results), '--cost', str(cost)])


def test_compute_matched_pairs_lsskd_with_ce_four_times_longer(tmp_path):
    from cifar100_study_compute import blocks
    results, cost = study_at_60_epochs(tmp_path)
    # Two seeds of CE at 240 epochs: figures, but no verdict.
    write_results(results, 240, [fake('ce', 0, 44.0), fake('ce', 1, 45.0)])
    lines = blocks(compute_args(results, cost))['compute-matched']
    text = '\n'.join(lines)
    assert '| 0 | 40.00 | 44.00 | 45.00 |' in lines
    assert '| 2 | 42.00 | - | 46.00 |' in lines
    # LSSKD's epoch is 6 times CE's, its step 9 times the FLOPs: 60 of its
    # epochs against 240 of CE's are 1.5 and 2.25 times.
    assert '1.50 times the training time and 2.25 times the training ' \
        'FLOPs' in text
    # CE gains +4 at both seeds; LSSKD leads by +1 and -1.
    assert ('- Cross-entropy from 60 epochs to 240 epochs: +4.00 ± 0.00 '
            '(2 seeds); 2 of 3 seeds, no verdict yet.') in lines
    assert ('- LSSKD at 60 epochs minus cross-entropy at 240 epochs: '
            '+0.00 ± 1.41 (2 seeds); 2 of 3 seeds, no verdict yet.') in lines
    assert 'beats' not in text and 'trails' not in text

    # The third seed: CE at 240 gains +4, +4, +1 (mean 3, std 1.73) and
    # LSSKD minus it is +1, -1, +3 (mean 1, std 2): within the spread.
    write_results(results, 240, [fake('ce', 2, 43.0)])
    lines = blocks(compute_args(results, cost))['compute-matched']
    assert ('- Cross-entropy from 60 epochs to 240 epochs: +3.00 ± 1.73 '
            '(3 seeds); **beats cross-entropy at 60 epochs** (spread '
            '1.73).') in lines
    assert ('- LSSKD at 60 epochs minus cross-entropy at 240 epochs: '
            '+1.00 ± 2.00 (3 seeds); **within the seed spread of '
            'cross-entropy at 240 epochs** (spread 2.00).') in lines


def test_the_readme_sentence_says_what_the_compute_buys(tmp_path):
    """Which way LSSKD against CE given its compute falls is stated in
    words, with the time LSSKD takes, once three seeds have finished."""
    from cifar100_study_compute import compute_matched_sentence
    results, cost = study_at_60_epochs(tmp_path)
    args = compute_args(results, cost)
    head = ('Against cross-entropy trained 4 times as long (240 epochs, as '
            'many images through the backbone; LSSKD takes 1.50 times its '
            'training time)')
    assert compute_matched_sentence(args) == [f'{head}: no run finished yet.']
    write_results(results, 240, [fake('ce', 0, 44.0), fake('ce', 1, 45.0)])
    assert compute_matched_sentence(args) == [
        f'{head}: LSSKD +0.00 ± 1.41 after 2 of 3 seeds, no verdict yet.']
    # LSSKD minus CE at 240: +1, -1, +3: within the spread (2.00).
    write_results(results, 240, [fake('ce', 2, 43.0)])
    assert compute_matched_sentence(args) == [
        f'{head}: LSSKD is within the seed spread of it: at this scale the '
        f'same compute buys as much as plain training (+1.00 ± 2.00, 3 '
        f'seeds, paired).']
    # CE at 240 far behind at every seed: LSSKD beats it.
    write_results(results, 240, [fake('ce', s, 30.0 + s) for s in (0, 1, 2)])
    assert compute_matched_sentence(args)[0].endswith(
        ': LSSKD still beats it (+14.00 ± 1.00, 3 seeds, paired).')


def test_label_smoothing_is_read_against_ce_and_lsskd(tmp_path):
    from cifar100_study_compute import blocks
    results = tmp_path / 'results'
    write_results(results, 60, [
        *(fake('ce', s, t) for s, t in ((0, 40.0), (1, 41.0), (2, 42.0))),
        *(fake('lsskd', s, t) for s, t in ((0, 45.0), (1, 44.0), (2, 46.0))),
        fake('lbs', 0, 41.0)
    ])
    lines = blocks(compute_args(results, tmp_path / 'none.json'))
    # Without a cost file the table says how to measure it.
    assert 'Not measured yet' in lines['cifar100-study-cost'][0]
    smoothing = lines['label-smoothing']
    assert ('- Label smoothing minus cross-entropy: +1.00 (1 seed); 1 of 3 '
            'seeds, no verdict yet.') in smoothing
    assert ("- Label smoothing minus the paper's LSSKD: -4.00 (1 seed); 1 "
            'of 3 seeds, no verdict yet.') in smoothing


def test_bfloat16_is_set_against_float32_where_both_ran(tmp_path):
    """At a length trained in both precisions each bfloat16 run is placed
    against float32's seeds (within their range or outside it) and paired
    with float32's run of its seed."""
    from cifar100_study_compute import precision_block
    results = tmp_path / 'results'
    results.mkdir()
    for seed, top1 in ((0, 25.0), (1, 26.0), (2, 27.0)):
        for method, shift in (('ce', 0.0), ('lsskd', -1.0)):
            (results / f'{method}_resnet20_0.2frac_12e_seed{seed}.json'
             ).write_text(json.dumps(dict(
                 method=method, seed=seed, precision='fp32',
                 last=dict(top1=top1 + shift))))
    write_results(results, 12, [fake('ce', 0, 25.5), fake('lsskd', 0, 20.0)])
    lines = precision_block(compute_args(results, tmp_path / 'none.json'),
                            12)
    assert '| 0 | 25.00 | 25.50 | 24.00 | 20.00 |' in lines
    assert '| mean ± std | 26.00 ± 1.00 | - | 25.00 ± 1.00 | - |' in lines
    assert lines[-2:] == [
        "- Cross-entropy, bfloat16, seed 0: 25.50, within float32's 3 seeds "
        '(25.00 to 27.00); minus float32 at that seed: +0.50.',
        "- LSSKD (paper), bfloat16, seed 0: 20.00, outside float32's 3 "
        'seeds (24.00 to 26.00); minus float32 at that seed: -4.00.'
    ]


def test_a_cost_table_gives_every_figure_beside_its_ratio():
    from cifar100_study_compute import cost_table
    lines = cost_table(cost_record())
    assert lines[3] == 'python tools/benchmarks/cifar100_study_cost.py DATA'
    assert '| lsskd | 60.0 | 6.00 | 2.250 | 9.00 | 300 | 6.00 | 180 |' in \
        lines


def test_the_docs_show_what_the_committed_files_say():
    """The cost table, the compute-matched and the label-smoothing blocks
    of docs/results.md are the script's output from the committed files:
    after a new result, run ``cifar100_study_compute.py --update-docs``."""
    from cifar100_study_compute import blocks, markers, parse_args
    from cifar100_study_report import RESULTS_PAGE
    from cifar100_study_compute import COST, COST_PAGE
    args = parse_args([])
    page = RESULTS_PAGE.read_text()
    for name, lines in blocks(args).items():
        begin, end = markers(name, args)
        assert '\n'.join([begin, *lines, end]) in page, name
        if name == COST:
            assert '\n'.join([begin, *lines, end]) in COST_PAGE.read_text()
    # bfloat16 against float32, on the benchmarks page.
    from cifar100_study_compute import (BENCHMARKS_PAGE, LENGTHS,
                                        PRECISION_CHECK, precision_block)
    begin, end = markers(PRECISION_CHECK, args)
    block = '\n'.join([begin, *precision_block(args, LENGTHS[0][0]), end])
    assert block in BENCHMARKS_PAGE.read_text()
    # The model-zoo pages of the config folders.
    from cifar100_study_compute import ZOO, ZOO_MARKERS, zoo_table
    for folder, methods in ZOO.items():
        block = '\n'.join([ZOO_MARKERS[0], *zoo_table(args, methods),
                           ZOO_MARKERS[1]])
        assert block in (ROOT / 'configs' / folder / 'README.md').read_text()


def test_the_long_schedule_must_be_longer():
    from cifar100_study_compute import parse_args
    with pytest.raises(SystemExit):
        parse_args(['--epochs', '60', '--long-epochs', '60'])
    assert isinstance(parse_args([]), argparse.Namespace)


def test_the_readme_glance_table_is_generated_from_the_files():
    from cifar100_study_compute import (compute_matched_markers,
                                        compute_matched_sentence,
                                        glance_markers, glance_table,
                                        parse_args)
    readme = (ROOT / 'README.md').read_text()
    for markers, lines in (
            (glance_markers(), glance_table(parse_args([]))),
            (compute_matched_markers(),
             compute_matched_sentence(parse_args([])))):
        assert '\n'.join([markers[0], *lines, markers[1]]) in readme


def selected(method, seed, top1, unused):
    return dict(fake(method, seed, top1), selection=dict(top1=unused))


def test_the_best_variant_is_chosen_on_unused_images_with_three_seeds():
    """Not on the test set, not among diagnostics, Cutout + CutMix runs or
    variants with fewer seeds than a verdict."""
    from cifar100_study_compute import best_variant
    results = {
        # Best on the test set, second on the unused images.
        'lsskd-no-kl': [selected('lsskd-no-kl', s, 60.0, 30.0)
                        for s in range(3)],
        'lsskd-no-feat': [selected('lsskd-no-feat', s, 40.0, 31.0)
                          for s in range(3)],
        'lsskd-no-hier': [selected('lsskd-no-hier', s, 40.0, 50.0)
                          for s in range(2)],
        'lsskd-precise-bn-views': [selected('lsskd-precise-bn-views', s,
                                            40.0, 50.0) for s in range(3)],
        'lsskd-coc': [selected('lsskd-coc', s, 40.0, 50.0)
                      for s in range(3)],
        'pskd-uniform': [selected('pskd-uniform', s, 40.0, 50.0)
                         for s in range(3)],
    }
    assert best_variant(results) == 'lsskd-no-feat'
    del results['lsskd-no-feat'], results['lsskd-no-kl']
    assert best_variant(results) is None


def test_the_glance_table_pairs_by_seed_and_reads_cost_per_run(tmp_path):
    from cifar100_study_compute import glance_table
    results, cost = study_at_60_epochs(tmp_path)
    write_results(results, 240, [fake('ce', 0, 44.0)])
    lines = glance_table(compute_args(results, cost))
    assert '| 60 (bf16) | Cross-entropy | 3 | 41.00 ± 1.00 | - | - | ' \
        '1.00 |' in lines
    # +5, +3, +4: mean 4, std 1; spreads 1, 1, 1: beats.
    assert '|  | LSSKD (paper) | 3 | 45.00 ± 1.00 | +4.00 ± 1.00 | ' \
        '**beats** | 6.00 |' in lines
    # CE four times longer costs four CE runs; one seed, no verdict.
    assert '|  | Cross-entropy, 240 epochs | 1 | 44.00 | +4.00 | no ' \
        'verdict (1 of 3 seeds) | 4.00 |' in lines
    # No 12-epoch files here: that length has no rows.
    assert not any(line.startswith('| 12 ') for line in lines)


def test_the_checkpoint_sizes_in_the_docs_are_what_the_tool_computes():
    """docs/cost.md's store and checkpoint table is the output of
    tools/analysis_tools/checkpoint_sizes.py (--update-docs)."""
    from checkpoint_sizes import CONFIGS, MARKERS, PAGE, table
    block = '\n'.join([MARKERS[0], *table(CONFIGS), MARKERS[1]])
    assert block in PAGE.read_text()


def test_the_store_size_is_what_a_built_store_holds():
    """The tool sizes stores with estimate_nbytes: it is the bytes of a
    built store's tensors, at every store setting."""
    from checkpoint_sizes import STORE_SETTINGS

    from mmlsskd.engine import PastPredictionStore
    for setting in STORE_SETTINGS:
        built = PastPredictionStore(64, 10, 4, 3, device='cpu', **setting)
        assert built.nbytes == PastPredictionStore.estimate_nbytes(
            64, 10, 4, 3, **setting), setting
