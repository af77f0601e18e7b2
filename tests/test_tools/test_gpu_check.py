"""gpu_check.py runs end to end (on the CPU here: timings only) and writes
one JSON object per figure with the fields the GPU tables are built from."""
import json
import sys

from conftest import run


def test_gpu_check_writes_one_result_per_candidate(tiny_cifar100, tmp_path):
    out_dir = tmp_path / 'gpu'
    # The timed epochs: one image of each of the 5 classes, one batch. A
    # smaller last batch would trace the compiled step again (most of this
    # test's time on a CI core).
    run([
        sys.executable, 'tools/benchmarks/gpu_check.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--skip-tests',
        '--methods', 'plain', 'LSSKD', '--variants', 'fp32', '--paths',
        'eager', 'fast', 'compiled', '--repeats',
        '1', '--steps-per-repeat', '1', '--epoch-fraction', '0.25',
        '--workers', '0', '--batch-size', '5', '--out-dir',
        str(out_dir)
    ], tmp_path)
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == sorted(f'resnet20_{m}_{p}_fp32.json'
                           for m in ('plain', 'LSSKD')
                           for p in ('eager', 'fast', 'compiled'))
    for name in names:
        record = json.loads((out_dir / name).read_text())
        assert {'device', 'torch', 'model', 'batch_size', 'method', 'path',
                'ms_per_step', 'ms_per_iter', 'command'} <= set(record)
        assert record['batch_size'] == 5 and record['model'] == 'resnet20'
        assert record['ms_per_step'] > 0 and record['ms_per_iter'] > 0


def test_past_the_budget_the_step_figures_still_come_back(tiny_cifar100,
                                                          tmp_path):
    """A GPU call has a hard limit: past --budget no whole-epoch timing
    starts, and every candidate's step figure is still written."""
    out_dir = tmp_path / 'gpu'
    run([
        sys.executable, 'tools/benchmarks/gpu_check.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--skip-tests',
        '--methods', 'plain', '--variants', 'fp32', '--paths', 'eager',
        '--repeats', '1', '--steps-per-repeat', '1', '--workers', '0',
        '--batch-size', '4', '--budget', '0', '--out-dir', str(out_dir)
    ], tmp_path)
    record = json.loads(
        (out_dir / 'resnet20_plain_eager_fp32.json').read_text())
    assert record['ms_per_step'] > 0 and record['ms_per_iter'] is None
    assert record['ms_per_iter_skipped'] == 'past --budget 0.0 s'
