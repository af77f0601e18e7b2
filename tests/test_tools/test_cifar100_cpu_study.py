"""The CPU study script runs end to end: configs, training, table, plot."""
import json
import sys

from conftest import run


def test_study_trains_every_method_and_reports(tiny_cifar100, tmp_path):
    work = tmp_path / 'study'
    out = run([
        sys.executable, 'tools/benchmarks/cifar100_cpu_study.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--methods', 'ce', 'pskd',
        'lsskd', '--fraction', '0.5', '--epochs', '2', '--val-interval',
        '1', '--work-dir',
        str(work)
    ], tmp_path)
    results = json.loads((work / 'results.json').read_text())['results']
    assert list(results) == ['ce', 'pskd', 'lsskd']
    for method, result in results.items():
        assert [r['step'] for r in result['epochs']] == [1, 2]
        assert result['wall_s'] > 0 and result['s_per_iter'] > 0
    # The shipped configs, shrunk: 2 epochs, the subset, the paper's steps.
    cfg = (work / 'lsskd/lsskd_resnet20.py').read_text()
    assert 'ClassStratifiedSubset' in cfg and 'max_epochs=2' in cfg
    assert "type='BranchAccuracy'" in cfg
    assert set(results['lsskd']['epochs'][-1]) >= {
        'aux/branch1_top1', 'aux/branch2_top1', 'aux/branch3_top1'
    }
    assert (work / 'accuracy.png').stat().st_size > 10_000
    table = [line for line in out.splitlines() if line.startswith('|')]
    assert len(table) == 5  # header, rule and three methods
    assert table[-1].startswith('| LSSKD |')
    assert table[-2].startswith('| PS-KD |')

    # --report-only prints the same table again without training.
    again = run([
        sys.executable, 'tools/benchmarks/cifar100_cpu_study.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--methods', 'ce', 'pskd',
        'lsskd', '--report-only', '--work-dir',
        str(work)
    ], tmp_path)
    assert [line for line in again.splitlines()
            if line.startswith('|')] == table
