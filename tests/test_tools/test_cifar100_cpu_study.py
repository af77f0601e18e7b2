"""The study script runs end to end: configs, training, one result file per
run, runs with a result skipped, table and plot built from the files."""
import argparse
import json
import re
import sys

import pytest
from conftest import ROOT, run, run_main

STUDY = 'tools/benchmarks/cifar100_cpu_study.py'


def study(data, work, results, *extra):
    # float32: the precision every CPU runs at speed (bf16 is refused on a
    # CPU without native bfloat16, as on some CI machines).
    return [
        sys.executable, STUDY, str(data),
        '--fraction', '0.5', '--epochs', '2', '--val-interval', '1',
        '--precision', 'fp32', '--work-dir', str(work), '--results-dir',
        str(results), *extra
    ]


def table_of(out):
    return [line for line in out.splitlines() if line.startswith('|')]


@pytest.fixture(scope='module')
def base_study(tiny_cifar100, tmp_path_factory):
    """CE and LSSKD, seeds 0 and 1: the runs the other tests build on."""
    tmp = tmp_path_factory.mktemp('study')
    data = tiny_cifar100 / 'cifar-100-python'
    work, results = tmp / 'study', tmp / 'results'
    out = run(study(data, work, results, '--methods', 'ce', 'lsskd',
                    '--seeds', '0', '1'), tmp)
    return dict(data=data, work=work, results=results, out=out)


def test_study_writes_a_result_per_run_and_builds_the_table_from_them(
        base_study, monkeypatch, capfd):
    data, work, results, out = (base_study[k] for k in (
        'data', 'work', 'results', 'out'))
    files = sorted(p.name for p in results.iterdir())
    assert files == [f'{m}_resnet20_0.5frac_2e_seed{s}.json'
                     for m in ('ce', 'lsskd') for s in (0, 1)]
    lsskd = json.loads(
        (results / 'lsskd_resnet20_0.5frac_2e_seed1.json').read_text())
    assert lsskd['method'] == 'lsskd' and lsskd['seed'] == 1
    assert lsskd['config'] == \
        'configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py'
    assert [r['epoch'] for r in lsskd['curve']] == [1, 2]
    assert lsskd['last']['top1'] == lsskd['curve'][-1]['accuracy/top1']
    assert lsskd['best_on_test']['top1'] == max(
        r['accuracy/top1'] for r in lsskd['curve'])
    assert set(lsskd['last']['branches_top1']) == {
        'aux/branch1_top1', 'aux/branch2_top1', 'aux/branch3_top1'}
    assert lsskd['wall_s'] > 0 and lsskd['s_per_iter'] > 0
    assert lsskd['precision'] == 'fp32'
    assert re.fullmatch(r'[0-9a-f]{40}(\+changes)?', lsskd['commit'])
    fit = lsskd['train_fit']
    assert fit['images'] == 'the training subset, test pipeline'
    assert 0 <= fit['top1'] <= fit['top5'] <= 100
    # Chosen on: the final checkpoint on the half of every class that the
    # seed's subset left out, with the test pipeline.
    selection = lsskd['selection']
    assert selection['images'] == 'training images outside the subset'
    assert 0 <= selection['top1'] <= selection['top5'] <= 100
    assert len(selection['branches_top1']) == 3
    # The seed picks the subset as well as the initialisation.
    cfg = (work / 'lsskd_seed1/lsskd_resnet20.py').read_text()
    assert 'ClassStratifiedSubset' in cfg and 'seed=1' in cfg
    assert 'max_epochs=2' in cfg and "type='BranchAccuracy'" in cfg

    table = table_of(out)
    assert len(table) == 4  # header, rule and two methods
    assert 'top-1 on unused training images (chosen on)' in table[0]
    assert table[2].startswith('| Cross-entropy | 0, 1 |')
    assert table[3].startswith('| LSSKD (paper) | 0, 1 |')
    assert (work / 'accuracy.png').stat().st_size > 10_000

    # A second call trains nothing: every run has its file; the table is
    # the same, built from the files alone.
    again = run_main(STUDY, study(data, work, results, '--methods', 'ce',
                                  'lsskd', '--seeds', '0', '1')[2:],
                     monkeypatch, capfd)
    assert again.count('skipped') == 4 and 'Epoch(train)' not in again
    assert table_of(again) == table
    # A result without its selection figure gets it from its checkpoint,
    # and the evaluation is deterministic.
    ce1 = results / 'ce_resnet20_0.5frac_2e_seed1.json'
    record = json.loads(ce1.read_text())
    ce1.write_text(json.dumps({k: v for k, v in record.items()
                               if k != 'selection'}))
    run_main(STUDY, study(data, work, results, '--methods', 'ce', '--seeds',
                          '1')[2:], monkeypatch, capfd)
    assert json.loads(ce1.read_text())['selection'] == record['selection']
    # A file's numbers are what the table shows: edit one, see it move.
    ce0 = results / 'ce_resnet20_0.5frac_2e_seed0.json'
    record = json.loads(ce0.read_text())
    record['last']['top1'], other = 10.0, json.loads(
        (results / 'ce_resnet20_0.5frac_2e_seed1.json').read_text())
    ce0.write_text(json.dumps(record))
    report = run_main(STUDY, study(data, work, results, '--methods', 'ce',
                                   '--report-only')[2:], monkeypatch, capfd)
    mean = (10.0 + other['last']['top1']) / 2
    assert f'| Cross-entropy | 0, 1 | {mean:.2f} ± ' in report


def test_precise_bn_is_derived_from_the_lsskd_checkpoint(base_study,
                                                         monkeypatch, capfd):
    """LSSKD with PreciseBNHook trains as LSSKD does: its result is LSSKD's
    final checkpoint, recalibrated once, not a second training run."""
    data, work, results = (base_study[k] for k in ('data', 'work',
                                                   'results'))
    out = run_main(STUDY, study(data, work, results, '--methods', 'lsskd',
                                'lsskd-precise-bn',
                                'lsskd-precise-bn-views')[2:],
                   monkeypatch, capfd)
    assert 'Epoch(train)' not in out
    assert 'Running Precise BN' in out
    plain, recalibrated = (json.loads(
        (results / f'{m}_resnet20_0.5frac_2e_seed0.json').read_text())
        for m in ('lsskd', 'lsskd-precise-bn'))
    source = recalibrated['derived_from']
    assert source['method'] == 'lsskd'
    assert source['checkpoint'].endswith('lsskd_seed0/epoch_2.pth')
    assert recalibrated['best_on_test'] is None
    assert [r['epoch'] for r in recalibrated['curve']] == [2]
    assert recalibrated['s_per_iter'] == plain['s_per_iter']
    assert set(recalibrated['selection']) == set(plain['selection'])
    # Nothing of the derived runs was trained.
    assert not list((work / 'lsskd-precise-bn_seed0').glob('*.pth'))
    views = json.loads((results / 'lsskd-precise-bn-views_resnet20_0.5frac'
                        '_2e_seed0.json').read_text())
    assert views['derived_from']['method'] == 'lsskd'
    assert out.count('Running Precise BN') == 2
    row = [line for line in table_of(out)
           if line.startswith('| LSSKD + BN recalibration |')]
    assert row and row[0].split(' | ')[4] == '-'  # no best epoch


def test_every_study_method_has_a_shipped_resnet20_config():
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_methods import LABELS, METHODS
    assert set(LABELS) == set(METHODS)
    for template in METHODS.values():
        assert (ROOT / template.format(model='resnet20')).exists(), template


def test_a_holdout_study_chooses_on_training_images_and_tests_once(
        tiny_cifar100, tmp_path, monkeypatch, capfd):
    data = tiny_cifar100 / 'cifar-100-python'
    work, results = tmp_path / 'study', tmp_path / 'results'
    out = run_main(STUDY, [
        data, '--fraction', '1', '--holdout', '0.5', '--epochs', '1',
        '--precision', 'fp32', '--methods', 'lsskd', '--work-dir', work,
        '--results-dir', results
    ], monkeypatch, capfd)
    record = json.loads(
        (results / 'lsskd_resnet20_1frac_1e_holdout0.5_seed0.json')
        .read_text())
    assert record['evaluated_on'] == 'held-out training images'
    assert 'best_on_test' not in record
    test = record['test_after_training']
    assert set(test) == {'top1', 'top5', 'branches_top1'}
    assert len(test['branches_top1']) == 3
    # The run trained on half of every class and validated on the other
    # half, with the test pipeline; the test set was not seen in training.
    cfg = (work / 'lsskd_seed0/lsskd_resnet20.py').read_text()
    assert cfg.count("split='holdout'") == 1
    assert cfg.count("holdout=0.5") == 2
    header = [line for line in out.splitlines() if line.startswith('|')][0]
    assert 'held-out top-1, last epoch' in header
    assert 'test top-1 after training' in header


def test_a_holdout_table_is_not_written_into_the_docs(monkeypatch, capfd):
    out = run_main(STUDY, ['data', '--holdout', '0.1', '--update-docs',
                           '--report-only'], monkeypatch, capfd,
                   succeed=False)
    assert '--update-docs writes the test-set table' in out


def test_an_interrupted_run_resumes_where_it_stopped(base_study, tmp_path,
                                                     monkeypatch, capfd):
    """A run killed with its session resumes from its last epoch when the
    study is started again, and ends as the uninterrupted run does."""
    data, straight = base_study['data'], base_study['results']
    # The base study's CE seed 0, stopped after its first epoch.
    work, results = tmp_path / 'study', tmp_path / 'results'
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_cpu_study import study_config
    args = argparse.Namespace(
        data=str(data), model='resnet20', fraction=0.5, holdout=0.0,
        epochs=2, val_interval=1, cfg_options={}, precision='fp32',
        channels_last=False)
    run_dir = work / 'ce_seed0'
    run_dir.mkdir(parents=True)
    cfg = study_config('ce', 0, args)
    # Stops after the first evaluation, as a killed session would have.
    cfg.custom_hooks.append(dict(type='EarlyStoppingHook',
                                 monitor='accuracy/top1',
                                 stopping_threshold=0.0))
    cfg.dump(str(run_dir / 'first_part.py'))
    run([sys.executable, 'tools/train.py', str(run_dir / 'first_part.py'),
         '--work-dir', str(run_dir)], tmp_path)
    assert (run_dir / 'epoch_1.pth').is_file()
    assert not (run_dir / 'epoch_2.pth').exists()

    out = run_main(STUDY, study(data, work, results, '--methods', 'ce')[2:],
                   monkeypatch, capfd)
    assert 'Resuming' in out or 'resumed epoch: 1' in out
    resumed = json.loads(
        (results / 'ce_resnet20_0.5frac_2e_seed0.json').read_text())
    expected = json.loads(
        (straight / 'ce_resnet20_0.5frac_2e_seed0.json').read_text())
    # The killed part's time, read from its log, is in the run's wall time.
    from cifar100_cpu_study import part_logs, part_seconds
    first_log, _ = part_logs(run_dir)
    assert resumed['parts'] == 2
    assert resumed['wall_s'] > part_seconds(first_log) > 0
    # Each part's settings: the first was started outside the study, which
    # noted nothing for it; the study noted the second's.
    first, second = resumed['part_timings']
    assert first == dict(seconds=part_seconds(first_log), threads=None,
                         jobs=None)
    assert (second['threads'], second['jobs']) == (1, 1)
    assert resumed['curve'] == expected['curve']
    assert resumed['selection'] == expected['selection']


def test_a_part_is_timed_from_the_first_to_the_last_line_of_its_log(
        tmp_path):
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_cpu_study import part_logs, part_seconds
    run_dir = tmp_path / 'lsskd_seed0'
    logs = []
    for stamp, lines in (
        ('20261202_235930', [
            '2026/12/02 23:59:30 - mmengine - INFO - ',
            'System environment:',  # a continuation line, no time
            '2026/12/03 00:04:00 - mmengine - INFO - Epoch(train) [1][50/157]',
        ]),
        ('20261203_080000', ['2026/12/03 08:00:05 - mmengine - INFO - ']),
    ):
        (run_dir / stamp).mkdir(parents=True)
        logs.append(run_dir / stamp / f'{stamp}.log')
        logs[-1].write_text('\n'.join(lines) + '\n')
    # Not parts: the final evaluation's logs, one level deeper.
    (run_dir / 'final/20261203_090000').mkdir(parents=True)
    (run_dir / 'final/20261203_090000/20261203_090000.log').write_text(
        '2026/12/03 09:00:00 - mmengine - INFO - \n')
    assert part_logs(run_dir) == logs
    # Across midnight: 30 s before it and 4 min after it.
    assert part_seconds(logs[0]) == 270.
    # A part that logged one line, and one killed before it logged any.
    assert part_seconds(logs[1]) == 0.
    logs[1].write_text('')
    assert part_seconds(logs[1]) == 0.


def test_runs_side_by_side_train_at_once_and_as_each_does_alone(
        base_study, tmp_path):
    """--jobs 2: two runs at once, a thread each (of the one the tests
    give), each ending exactly as it did alone."""
    data, alone = base_study['data'], base_study['results']
    work, results = tmp_path / 'study', tmp_path / 'results'
    out = run(study(data, work, results, '--methods', 'ce', '--seeds', '0',
                    '1', '--jobs', '2'), tmp_path)
    assert '2 runs, 2 at a time, 1 thread(s) each' in out
    # Each run's output is in its own console.log, not on the terminal.
    assert 'Epoch(train)' not in out
    spans = []
    for seed in (0, 1):
        name = f'ce_resnet20_0.5frac_2e_seed{seed}.json'
        together, by_itself = (json.loads((where / name).read_text())
                               for where in (results, alone))
        assert (together['jobs'], together['threads']) == (2, 1)
        assert (by_itself['jobs'], by_itself['threads']) == (1, 1)
        assert [(part['jobs'], part['threads'])
                for part in together['part_timings']] == [(2, 1)]
        for key in ('curve', 'selection', 'train_fit'):
            assert together[key] == by_itself[key]
        run_dir = work / f'ce_seed{seed}'
        assert 'Epoch(train)' in (run_dir / 'console.log').read_text()
        # A run starts by writing its config and ends by writing its
        # result. (Its training log alone spans a few seconds of a tiny run:
        # a worker that starts a few seconds late makes two runs at once
        # look like two in a row.)
        spans.append(((run_dir / 'ce_resnet20.py').stat().st_mtime_ns,
                      (results / name).stat().st_mtime_ns))
    # At once: each started before the other ended.
    (start0, end0), (start1, end1) = spans
    assert start0 < end1 and start1 < end0


def test_runs_names_the_runs_to_train_instead_of_every_method_and_seed(
        base_study, tmp_path, monkeypatch, capsys):
    """--runs METHOD:SEED trains those runs alone, in their order (here
    both finished, so each is skipped and says so); the report covers
    --methods, and a run it would leave out, a repeated run or a malformed
    one is refused before anything trains."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    import cifar100_cpu_study
    argv = study(base_study['data'], base_study['work'],
                 base_study['results'], '--methods', 'ce', 'lsskd',
                 '--plot', str(tmp_path / 'accuracy.png'))[1:]
    monkeypatch.setattr('sys.argv', argv + ['--runs', 'lsskd:1', 'ce:0'])
    cifar100_cpu_study.main()
    out = capsys.readouterr().out
    assert re.findall(r'^(\S+) seed (\d): done', out, re.M) == [
        ('lsskd', '1'), ('ce', '0')]
    # The report covers --methods, every seed of each.
    rows = [row.split(' | ')[:2] for row in table_of(out)[2:]]
    assert rows == [['| Cross-entropy', '0, 1'], ['| LSSKD (paper)', '0, 1']]
    for runs, error in ((['pskd:0'], "--runs trains ['pskd'], which "
                         '--methods leaves out of the report'),
                        (['ce:0', 'ce:0'], 'names ce:0 more than once'),
                        (['ce'], "'ce' is not METHOD:SEED"),
                        (['mixup:0'], "'mixup:0' is not METHOD:SEED")):
        monkeypatch.setattr('sys.argv', argv + ['--runs', *runs])
        with pytest.raises(SystemExit):
            cifar100_cpu_study.main()
        assert error in capsys.readouterr().err


def test_fewer_runs_left_than_jobs_share_all_the_threads(
        base_study, tmp_path, monkeypatch, capsys):
    """--jobs 2 with one run left to train (the other finished) trains it
    as --jobs 1 would: in this process, on every thread, and its result
    says one job; a second slot would have idled half the cores."""
    import shutil
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    import cifar100_cpu_study
    results = tmp_path / 'results'
    shutil.copytree(base_study['results'], results)
    (results / 'lsskd_resnet20_0.5frac_2e_seed1.json').unlink()

    class Trained(Exception):
        pass

    def train_run(method, seed, args, run_dir, config):
        raise Trained(method, seed, args.jobs)

    monkeypatch.setattr(cifar100_cpu_study, 'train_run', train_run)
    monkeypatch.setattr('sys.argv', study(
        base_study['data'], tmp_path / 'study', results, '--methods', 'ce',
        'lsskd', '--jobs', '2', '--runs', 'ce:0', 'lsskd:1')[1:])
    with pytest.raises(Trained) as trained:
        cifar100_cpu_study.main()
    assert trained.value.args == ('lsskd', 1, 1)
    out = capsys.readouterr().out
    assert '1 run(s) left to train: 1 at a time, not --jobs 2' in out
    assert 'ce seed 0: done' in out


def test_a_failed_run_beside_others_stops_the_queue_not_the_running(
        base_study, tmp_path):
    """With --jobs 2, a run that fails (its work directory held by another
    training) lets the run beside it finish and write its result, starts
    no queued run, and names the failure and where its output is."""
    from mmlsskd.utils.work_dir_lock import WorkDirLock
    data, alone = base_study['data'], base_study['results']
    work, results = tmp_path / 'study', tmp_path / 'results'
    # Runs in order: LSSKD seed 0 and CE seed 0 at once, then seed 1's.
    # CE fails as it starts, long before LSSKD ends: no slot frees.
    lock = WorkDirLock(str(work / 'ce_seed0')).acquire()
    try:
        out = run(study(data, work, results, '--methods', 'lsskd', 'ce',
                        '--seeds', '0', '1', '--jobs', '2'),
                  tmp_path, succeed=False)
    finally:
        lock.release()
    assert 'ce seed 0 failed' in out
    assert str(work / 'ce_seed0' / 'console.log') in out
    assert 'WorkDirInUseError' in (work / 'ce_seed0/console.log').read_text()
    name = 'lsskd_resnet20_0.5frac_2e_seed0.json'
    assert [p.name for p in results.iterdir()] == [name]
    assert json.loads((results / name).read_text())['curve'] == \
        json.loads((alone / name).read_text())['curve']
    assert not (work / 'lsskd_seed1').exists()
    assert not (work / 'ce_seed1').exists()


def fake_run(method, seed, top1, selection=None):
    record = dict(method=method, seed=seed, last=dict(top1=top1))
    if selection is not None:
        record['selection'] = dict(top1=selection)
    return record


def test_the_verdict_pairs_seeds_and_needs_three_and_the_spread():
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import paired_difference, verdicts
    ce = [fake_run('ce', s, t, u) for s, t, u in
          ((0, 25.0, 24.0), (1, 26.0, 25.0), (2, 27.0, 26.0))]
    # Differences by seed +3, +2, +4 on the test set: mean 3, std 1; the
    # method's own spread is stdev(28, 28, 31) = sqrt(3) = 1.73.
    better = [fake_run('lsskd-no-past', s, t, u) for s, t, u in
              ((2, 31.0, 26.5), (0, 28.0, 24.5), (1, 28.0, 25.5))]
    test = paired_difference(better, ce, lambda r: r['last']['top1'])
    assert test['seeds'] == 3 and test['mean'] == pytest.approx(3.0)
    assert test['std'] == pytest.approx(1.0)
    assert test['spread'] == pytest.approx(3 ** 0.5)
    # Unused images: +0.5 each: no spread in the differences, but CE's own
    # is 1.0 and the method's 1.0, so +0.5 is within the spread.
    # A seed without CE is not paired; one seed is no verdict.
    unpaired = [fake_run('lsskd', 0, 20.0, 19.0),
                fake_run('lsskd', 7, 40.0, 40.0)]
    lines = verdicts({'ce': ce, 'lsskd-no-past': better, 'lsskd': unpaired})
    assert lines == [
        '- LSSKD without past predictions: +3.00 ± 1.00 on the test set '
        '(last epoch), +0.50 ± 0.00 on the unused training images; '
        '**beats cross-entropy** on the test set (spread 1.73), within the '
        'spread on the unused training images (spread 1.00).',
        '- LSSKD (paper): -5.00 on the test set (last epoch), -5.00 on the '
        'unused training images; 1 seed of 3: no verdict yet.',
    ]
    # The summary's compact wording: the two verdicts differ here ...
    assert verdicts({'ce': ce, 'lsskd-no-past': better}, compact=True) == [
        '- LSSKD without past predictions: +3.00 ± 1.00 on the test set, '
        '+0.50 ± 0.00 on unused training images; **beats cross-entropy** '
        '(spread 1.73), within the spread on unused training images (1.00).']
    # ... and agree here (CE's unused-image figures are one below its test
    # ones; the method's the same): -4, -5, -3 on both; the spread is
    # PS-KD's own, stdev(21, 21, 24) = 1.73.
    agree = [fake_run('pskd', s, t, t - 1) for s, t in ((0, 21.0),
                                                        (1, 21.0),
                                                        (2, 24.0))]
    assert verdicts({'ce': ce, 'pskd': agree}, compact=True) == [
        '- PS-KD: -4.00 ± 1.00 on the test set, -4.00 ± 1.00 on unused '
        'training images; **trails cross-entropy** on both (spreads 1.73, '
        '1.73).']
    # Against the paper's LSSKD only its variants are compared.
    assert verdicts({'ce': ce, 'lsskd-no-past': better, 'lsskd': unpaired},
                    reference='lsskd') == [
        '- LSSKD without past predictions: +8.00 on the test set (last '
        'epoch), +5.50 on the unused training images; 1 seed of 3: no '
        'verdict yet.']
    worse = [fake_run('pskd', s, t) for s, t in ((0, 20.0), (1, 22.0),
                                                 (2, 21.0))]
    assert verdicts({'ce': ce, 'pskd': worse}) == [
        '- PS-KD: -5.00 ± 1.00 on the test set (last epoch); '
        '**trails cross-entropy** on the test set (spread 1.00).']
    # PS-KD's control against PS-KD: differences +0.5, 0, +2.5 (mean 1,
    # std sqrt(1.75) = 1.32) do not exceed the control's own spread,
    # stdev(20.5, 22, 23.5) = 1.5.
    control = [fake_run('pskd-uniform', s, t) for s, t in ((0, 20.5),
                                                          (1, 22.0),
                                                          (2, 23.5))]
    assert verdicts({'ce': ce, 'pskd': worse, 'pskd-uniform': control,
                     'lsskd-no-past': better}, reference='pskd') == [
        '- PS-KD, uniform past prediction (diagnostic): +1.00 ± 1.32 on the '
        'test set (last epoch); **within the seed spread of PS-KD** on the '
        'test set (spread 1.50).']

    # With Cutout and CutMix: against cross-entropy with the same
    # augmentation, only the runs that have it.
    ce_coc = [fake_run('ce-coc', s, t) for s, t in ((0, 24.0), (1, 25.0))]
    pskd_coc = [fake_run('pskd-coc', s, t) for s, t in ((0, 25.0),
                                                         (1, 28.0))]
    assert verdicts({'ce': ce, 'pskd': worse, 'ce-coc': ce_coc,
                     'pskd-coc': pskd_coc}, reference='ce-coc') == [
        '- PS-KD + Cutout + CutMix: +2.00 ± 1.41 on the test set (last '
        'epoch); 2 seeds of 3: no verdict yet.']
    # ... and no option of PS-KD's.
    assert verdicts({'pskd': worse, 'pskd-coc': pskd_coc},
                    reference='pskd') == []


def test_options_that_change_training_need_a_results_folder_of_their_own(
        monkeypatch, capsys, tmp_path):
    """A run with --cfg-options that change what it learns would be
    skipped for, or read as, the study's run of its method: refused unless
    its results go elsewhere; a layout option is no such change. A result
    file of such a run among the study's is refused when read."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    import cifar100_cpu_study
    from cifar100_study_methods import load_results
    argv = ['study', 'data', '--methods', 'lsskd', '--report-only',
            '--cfg-options']
    smoothing = 'model.head.loss.label_smooth_val=0.3'
    monkeypatch.setattr('sys.argv', argv + [smoothing])
    with pytest.raises(SystemExit):
        cifar100_cpu_study.parse_args()
    err = capsys.readouterr().err
    assert "{'model.head.loss.label_smooth_val': 0.3} change what" in err
    assert 'give this command a --results-dir' in err
    for accepted in (['model.channels_last=True'],
                     [smoothing, '--results-dir', str(tmp_path)]):
        monkeypatch.setattr('sys.argv', argv + accepted)
        cifar100_cpu_study.parse_args()
    (tmp_path / 'lsskd_resnet20_0.2frac_12e_seed0.json').write_text(
        json.dumps(dict(method='lsskd', seed=0, precision='fp32',
                        cfg_options={'model.channels_last': True})))
    args = argparse.Namespace(model='resnet20', fraction=0.2, epochs=12,
                              holdout=0.0, precision='fp32',
                              results_dir=str(tmp_path))
    assert len(load_results(args)['lsskd']) == 1
    (tmp_path / 'lsskd_resnet20_0.2frac_12e_seed1.json').write_text(
        json.dumps(dict(method='lsskd', seed=1, precision='fp32',
                        cfg_options={'custom_hooks.0.store.topk': 32})))
    with pytest.raises(SystemExit, match=r"trained with --cfg-options "
                       r"\{'custom_hooks.0.store.topk': 32\}"):
        load_results(args)


def test_bf16_is_refused_on_a_cpu_without_native_bfloat16(monkeypatch,
                                                          capsys):
    """Emulated bfloat16 trains many times slower than float32; the study
    says so and names --precision fp32 (a regime of its own)."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    import cifar100_cpu_study
    monkeypatch.setattr(cifar100_cpu_study, 'cpu_runs_bf16_natively',
                        lambda: False)
    argv = ['study', 'data', '--methods', 'ce']
    monkeypatch.setattr('sys.argv', argv)
    with pytest.raises(SystemExit):
        cifar100_cpu_study.parse_args()
    assert 'no native bfloat16' in capsys.readouterr().err
    # float32, and a report that trains nothing, are accepted.
    for extra in (['--precision', 'fp32'], ['--report-only']):
        monkeypatch.setattr('sys.argv', argv + extra)
        cifar100_cpu_study.parse_args()


def test_a_best_epoch_missing_for_some_seeds_is_not_averaged_away():
    """A derived run has no best epoch; a mean over the trained seeds
    alone would pass for every seed."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import table

    def run(seed, best):
        return dict(method='lsskd-precise-bn', seed=seed, s_per_iter=1.0,
                    last=dict(top1=20.0 + seed, top5=50.0, branches_top1={}),
                    best_on_test=best and dict(top1=best))

    def best_cell(runs):
        return table({'lsskd-precise-bn': runs})[2].split(' | ')[4]

    assert best_cell([run(0, None), run(1, 23.0)]) == '-'
    assert best_cell([run(0, 21.0), run(1, 23.0)]) == '22.00 ± 1.41'


def test_the_timing_column_says_whether_its_figures_compare():
    """s/iter compares between rows only when every part of every run was
    timed on one device with the same threads and jobs, all recorded."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import table

    def run(method, seed, **timing):
        return dict(method=method, seed=seed, s_per_iter=1.0 + seed,
                    last=dict(top1=20.0, top5=50.0, branches_top1={}),
                    best_on_test=None, device='cpu: x86_64, 2 cores',
                    **timing)

    def heading(*runs):
        results = {}
        for r in runs:
            results.setdefault(r['method'], []).append(r)
        return table(results)[0].split(' | ')[-1]

    alone = dict(parts=1, threads=2, jobs=1)
    same = heading(run('ce', 0, **alone), run('lsskd', 0, **alone),
                   run('lsskd', 1, parts=2, threads=2, jobs=1,
                       part_timings=[dict(seconds=9., threads=2, jobs=1),
                                     dict(seconds=5., threads=2, jobs=1)]))
    assert same == ('s/iter (median; every run on 2 thread(s), 1 run(s) at '
                    'once) |')
    not_comparable = ('s/iter (median; runs timed under other or unrecorded '
                      'loads: not comparable) |')
    # A run beside another; a resumed run whose file records its last part
    # only; a part started before the study noted settings; a result file
    # from before threads were recorded; another device.
    for other in (dict(parts=1, threads=1, jobs=2),
                  dict(parts=3, threads=2, jobs=1),
                  dict(parts=2, threads=2, jobs=1,
                       part_timings=[dict(seconds=9., threads=None,
                                          jobs=None),
                                     dict(seconds=5., threads=2, jobs=1)]),
                  dict(parts=1)):
        assert heading(run('ce', 0, **alone),
                       run('lsskd', 0, **other)) == not_comparable, other
    gpu = dict(run('lsskd', 0, **alone), device='cuda: NVIDIA H200')
    assert heading(run('ce', 0, **alone), gpu) == not_comparable


def test_the_summary_covers_settled_methods_only():
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import settled
    three = [fake_run('any', s, 20.0 + s) for s in range(3)]
    results = {'ce': three[:1], 'lsskd': three, 'lsskd-cls-kd': three[:2],
               'pskd-uniform': three, 'lsskd-precise-bn-views': three}
    # Two seeds is no verdict, and diagnostics stay in the full verdict.
    assert list(settled(results)) == ['ce', 'lsskd']


def test_the_summary_reads_cutout_and_cutmix_against_ce_with_them():
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import report

    def runs(method, top1s):
        return [dict(fake_run(method, seed, top1), s_per_iter=1.0,
                     last=dict(top1=top1, top5=50.0, branches_top1={}),
                     best_on_test=None)
                for seed, top1 in enumerate(top1s)]

    results = {'ce': runs('ce', (25.0, 26.0, 27.0)),
               'ce-coc': runs('ce-coc', (20.0, 21.0, 22.0)),
               'pskd-coc': runs('pskd-coc', (17.0, 18.0, 20.0)),
               'lsskd-coc': runs('lsskd-coc', (19.0, ))}
    args = argparse.Namespace(model='resnet20', fraction=0.2, epochs=12,
                              holdout=0.0, precision='fp32',
                              results_dir=str(ROOT / 'docs/results'))
    summary = '\n'.join(report(args, results)[2])
    # Against cross-entropy: differences -8, -8, -7 (mean -7.67, std
    # 0.58); against cross-entropy with the same augmentation: -3, -3, -2;
    # the largest spread is PS-KD's own, stdev(17, 18, 20) = 1.53. One
    # seed is no verdict.
    # The summary's wording is compact.
    assert '- PS-KD + Cutout + CutMix: -7.67 ± 0.58 on the test set; ' \
        '**trails cross-entropy** (spread 1.53).' in summary
    assert summary.split('With Cutout and CutMix, against cross-entropy with '
                         'them, paired by seed:\n\n')[1].startswith(
        '- PS-KD + Cutout + CutMix: -2.67 ± 0.58 on the test set; **trails '
        'cross-entropy with Cutout and CutMix** (spread 1.53).')
    assert 'LSSKD + Cutout + CutMix' not in summary


def test_cutout_and_cutmix_are_measured_against_the_method_without():
    """The paper's Table III claim: a method with them against itself
    without them, paired by seed; methods without a partner are left out."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import augmentation_effects
    results = {
        'ce': [fake_run('ce', s, t) for s, t in enumerate((25., 26., 27.))],
        'lsskd': [fake_run('lsskd', s, t) for s, t in enumerate((23., 25.,
                                                                 24.))],
        'ce-coc': [fake_run('ce-coc', s, t) for s, t in enumerate((19., 21.,
                                                                   20.))],
        'lsskd-coc': [fake_run('lsskd-coc', 0, 24.5)],
        'pskd-coc': [fake_run('pskd-coc', 0, 17.0)]}
    # CE: -6, -5, -7 (mean -6, std 1); the spread is the largest of 1
    # and both methods' stdev(...) = 1. LSSKD: one seed, +1.5.
    assert augmentation_effects(results) == [
        '- Cross-entropy + Cutout + CutMix: -6.00 ± 1.00 on the test set '
        '(last epoch); **trails cross-entropy** on the test set (spread '
        '1.00).',
        '- LSSKD + Cutout + CutMix: +1.50 on the test set (last epoch); 1 '
        'seed of 3: no verdict yet.']


def test_the_plot_groups_methods_as_the_verdicts_compare_them():
    """A panel per comparison, each with cross-entropy as reference: the
    methods and diagnostics; LSSKD's options beside the paper's LSSKD; the
    Cutout + CutMix runs. A panel with nothing of its own is left out."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import plot_panels
    assert plot_panels(['ce', 'pskd', 'lsskd', 'lsskd-no-past', 'lbs-0.4',
                        'pskd-coc', 'lsskd-precise-bn-views', 'ce-coc']) == [
        ('Methods and diagnostics', ['ce', 'pskd', 'lsskd', 'lbs-0.4']),
        ("LSSKD's ablations and options",
         ['ce', 'lsskd', 'lsskd-no-past', 'lsskd-precise-bn-views']),
        ('With Cutout and CutMix', ['ce', 'pskd-coc', 'ce-coc'])]
    assert plot_panels(['ce', 'pskd', 'lsskd']) == [
        ('Methods and diagnostics', ['ce', 'pskd', 'lsskd'])]
    # Without cross-entropy, no panel shows it.
    assert plot_panels(['lsskd-no-hier']) == [
        ("LSSKD's ablations and options", ['lsskd-no-hier'])]


@pytest.mark.parametrize('epochs, precision', [(12, 'fp32'), (60, 'bf16')])
def test_the_docs_show_what_the_committed_result_files_say(epochs,
                                                           precision):
    """The study's tables and verdicts in the docs are the script's output
    from docs/results/, never typed: after a new result file, run the
    documented ``--report-only --update-docs`` command."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_methods import LABELS, load_results
    from cifar100_study_report import (BY_SEED, PAST, RESULTS_PAGE,
                                       SUMMARY, TABLE, VERDICT,
                                       lead_by_seed_table, markers,
                                       past_prediction_table, report)
    args = argparse.Namespace(
        model='resnet20', fraction=0.2, epochs=epochs, holdout=0.0,
        precision=precision,
        results_dir=str(ROOT / 'docs/results/cifar100_study'))
    results = load_results(args)
    assert {'ce'} <= set(results)
    table_block, verdict_block, summary_block = report(args, results)
    results_page = RESULTS_PAGE.read_text()

    def block(name, lines):
        begin, end = markers(name, args)
        return '\n'.join([begin, *lines, end])

    assert block(TABLE, table_block) in results_page
    assert block(VERDICT, verdict_block) in results_page
    assert block(SUMMARY, summary_block) in results_page
    if epochs == 12:
        # The summary states the paper's LSSKD against cross-entropy.
        assert f'- {LABELS["lsskd"]}: ' in '\n'.join(summary_block)
    past = past_prediction_table(args, results)
    # Every measured checkpoint of the regime is shown (two header rows).
    regime = f'_{epochs}e_' + ('bf16_' if precision == 'bf16' else '')
    measured = [p for p in (ROOT / 'docs/results/past_predictions').glob(
        '*.json') if regime + 'seed' in p.name]
    assert len(past) - 2 * bool(measured) == len(measured)
    assert block(PAST, past) in results_page
    assert block(BY_SEED, lead_by_seed_table(args, results)) in results_page


def test_by_seed_table_by_hand():
    """Each method minus cross-entropy at the same seed, over the two
    phases of a 12-epoch schedule (first drop after epoch 8): evaluations
    at epochs 4 and 8 before it, 12 after."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_report import lead_by_seed_table

    def run(seed, curve):
        return dict(seed=seed, last=dict(top1=curve[-1]), curve=[
            {'epoch': e, 'accuracy/top1': a}
            for e, a in zip((4, 8, 12), curve)])

    results = dict(
        ce=[run(0, [10.0, 20.0, 30.0]), run(1, [11.0, 21.0, 31.0])],
        lsskd=[run(0, [9.0, 23.5, 32.25]), run(2, [1.0, 2.0, 3.0])])
    args = argparse.Namespace(
        epochs=12, results_dir=str(ROOT / 'docs/results/cifar100_study'))
    lines = lead_by_seed_table(args, results)
    assert 'first drops after epoch 8' in lines[0]
    # Seed 2 has no cross-entropy run to pair with.
    assert lines[4:] == [
        '| LSSKD (paper) | 0 | 32.25 / 30.00 | +2.25 | -1.00 to +3.50 '
        '(+3.50 at epoch 8) | +2.25 to +2.25 |'
    ]


def test_target_quality_by_hand():
    sys.path.insert(0, str(ROOT / 'tools/analysis_tools'))
    import torch
    from past_prediction_quality import target_quality
    past = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    figures = target_quality(past, torch.tensor([0, 0, 2]), alpha=0.8)
    # Targets' true mass 0.2 + 0.8 * (0.5, 0.1, 0.6) = (0.6, 0.28, 0.68);
    # their largest wrong entries 0.8 * (0.3, 0.6, 0.2) = (0.24, 0.48, 0.16):
    # only the second target points at another class.
    assert figures == dict(
        samples=3, top1=pytest.approx(200 / 3),
        true_class_probability=pytest.approx(0.4), alpha=0.8, beta=0.,
        target_true_mass=pytest.approx(0.52),
        target_wrong=pytest.approx(100 / 3))
    # With the deepest branch's distribution at beta 0.5 the first target,
    # 0.5 * (0.6, 0.24, 0.16) + 0.5 * (0.1, 0.7, 0.2) = (0.35, 0.47, 0.18),
    # points at class 1.
    mixed = target_quality(past[:1], torch.tensor([0]), alpha=0.8,
                           branch=torch.tensor([[0.1, 0.7, 0.2]]), beta=0.5)
    assert mixed['target_true_mass'] == pytest.approx(0.35)
    assert mixed['target_wrong'] == 100 and mixed['beta'] == 0.5
    assert mixed['true_class_probability'] == pytest.approx(0.5)
    # A tie between the label and another class counts as right.
    tie = target_quality(torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0]),
                         alpha=0.5)
    assert tie['target_wrong'] == 0 and tie['top1'] == 0


def test_branch_distribution_is_the_one_training_mixes_in():
    sys.path.insert(0, str(ROOT / 'tools/analysis_tools'))
    import torch
    from past_prediction_quality import unrotated_class_distribution

    from mmlsskd.models.utils import RotationViews
    torch.manual_seed(0)
    joint_logits = torch.randn(3, 5 * 4)  # unrotated view, C=5, K=4
    # What LSSKD's branch_target_weight mixes in: the softmax of the
    # view's own joint logits.
    views = RotationViews()
    trained = views.class_logits(joint_logits, 3, 1).softmax(1)
    stored = joint_logits.softmax(1)  # what the store keeps
    assert torch.allclose(
        unrotated_class_distribution(stored, views), trained.double())


def test_past_prediction_quality_reads_a_study_checkpoint(
        base_study, tmp_path, monkeypatch, capfd):
    run_dir = base_study['work'] / 'lsskd_seed0'
    out = tmp_path / 'quality.json'
    printed = run_main('tools/analysis_tools/past_prediction_quality.py', [
        run_dir / 'lsskd_resnet20.py', run_dir / 'epoch_2.pth', '--out', out
    ], monkeypatch, capfd)
    figures = json.loads(out.read_text())
    # Half of every class of the tiny set (5 classes x 4 images), every
    # one written in the second epoch; alpha is the config's alpha_T.
    assert figures['samples'] == 10 and figures['epoch_written'] == 2
    assert figures['alpha'] == 0.8
    assert figures['target_true_mass'] == pytest.approx(
        0.2 + 0.8 * figures['true_class_probability'])
    assert 'top-1 against the labels' in printed


def test_a_diagnostic_is_a_shipped_config_with_its_overrides(tiny_cifar100):
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_cpu_study import study_config
    from cifar100_study_methods import METHODS
    args = argparse.Namespace(
        data=str(tiny_cifar100 / 'cifar-100-python'), model='resnet20',
        fraction=0.5, holdout=0.0, epochs=2, val_interval=1,
        cfg_options={}, precision='bf16', channels_last=False)
    assert METHODS['lbs-0.4'] == METHODS['lbs']
    for method, value in (('lbs', 0.1), ('lbs-0.4', 0.4), ('lbs-0.8', 0.8)):
        loss = study_config(method, 0, args).model.head.loss
        assert loss.type == 'LabelSmoothLoss'
        assert loss.label_smooth_val == value
    assert study_config('pskd-uniform', 0, args).model.past_prediction == \
        'uniform'


def test_a_derived_method_is_its_source_plus_precise_bn_only():
    """Deriving a method from its source's checkpoint is right only when
    the two configs train identically: the derived config adds
    PreciseBNHook and changes nothing else."""
    from mmengine.config import Config
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from cifar100_study_methods import DERIVED, METHODS
    assert DERIVED['lsskd-all-options'] == 'lsskd-cls-kd-all-branch-target'
    for method, source in DERIVED.items():
        derived_cfg, source_cfg = (Config.fromfile(
            str(ROOT / METHODS[m].format(model='resnet20'))).to_dict()
                                   for m in (method, source))
        hooks = derived_cfg.pop('custom_hooks')
        source_hooks = source_cfg.pop('custom_hooks')
        assert [h['type'] for h in hooks] == \
            [h['type'] for h in source_hooks] + ['PreciseBNHook'], method
        assert hooks[:-1] == source_hooks
        assert derived_cfg == source_cfg, method


def test_bn_recalibration_tool_on_a_study_checkpoint(base_study, tmp_path,
                                                     monkeypatch, capfd):
    """The recalibration tool evaluates one checkpoint with BN statistics
    recomputed on unrotated images or on the four views: both change the
    statistics (else it raises), and they give different figures."""
    run_dir = base_study['work'] / 'lsskd_seed0'
    figures = {}
    for views in ((), ('--views', )):
        out = tmp_path / f'bn{len(views)}.json'
        run_main('tools/analysis_tools/bn_recalibration.py', [
            run_dir / 'lsskd_resnet20.py', run_dir / 'epoch_2.pth',
            '--epoch', '1', *views, '--out', out
        ], monkeypatch, capfd)
        record = json.loads(out.read_text())
        assert record['statistics_on'] == ('four views' if views else
                                           'unrotated images')
        figures[views] = record['test']
    assert set(figures[()]) >= {'accuracy/top1', 'aux/branch3_top1'}
    assert figures[()] != figures[('--views', )]


def test_study_lengths_pairs_each_method_with_ce_by_seed_and_epoch(
        tmp_path, monkeypatch, capfd):
    """The differences behind the lengths figure are the result files'
    curves, paired by seed and epoch; a seed without cross-entropy is
    left out."""
    results = tmp_path / 'results'
    results.mkdir()

    def write(method, seed, epochs, precision, top1s):
        record = dict(method=method, seed=seed, precision=precision,
                      last=dict(top1=top1s[-1]),
                      curve=[{'epoch': e, 'accuracy/top1': t}
                             for e, t in zip(epochs, top1s)])
        suffix = '' if precision == 'fp32' else f'_{precision}'
        (results / f'{method}_resnet20_0.2frac_{epochs[-1]}e{suffix}_'
         f'seed{seed}.json').write_text(json.dumps(record))

    write('ce', 0, [2, 4], 'fp32', [10.0, 20.0])
    write('lsskd', 0, [2, 4], 'fp32', [12.0, 19.0])
    write('ce', 0, [5, 10], 'bf16', [30.0, 40.0])
    write('ce', 1, [5, 10], 'bf16', [31.0, 41.0])
    write('lsskd', 0, [5, 10], 'bf16', [33.0, 41.5])
    write('lsskd', 1, [5, 10], 'bf16', [30.0, 42.0])
    write('lsskd', 2, [5, 10], 'bf16', [35.0, 45.0])  # no CE seed 2
    out = tmp_path / 'lengths.png'
    run_main('tools/analysis_tools/study_lengths.py', [
        '--lengths', '4:fp32', '10:bf16', '--methods', 'lsskd',
        '--results-dir', results, '--out', out
    ], monkeypatch, capfd)
    assert out.stat().st_size > 10_000
    numbers = json.loads(out.with_suffix('.json').read_text())
    assert numbers['4:fp32'] == {'lsskd': {'0': [[2, 2.0], [4, -1.0]]}}
    assert numbers['10:bf16'] == {'lsskd': {'0': [[5, 3.0], [10, 1.5]],
                                            '1': [[5, -1.0], [10, 1.0]]}}
