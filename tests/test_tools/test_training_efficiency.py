"""The training-efficiency benchmark runs end to end on tiny data.

Times are not checked (no timed tests); the FLOP ratio is, because it is
exact: ResNet-20's LSSKD training forward is HSSAKD's arithmetic, 9.25 times
a plain forward (the issue's reference figure).
"""
import json
import re
import sys

from conftest import ROOT, run, run_main


def test_benchmark_prints_every_candidate_and_the_flop_ratio(
        tiny_cifar100, tmp_path):
    out = run([
        sys.executable, 'tools/benchmarks/training_efficiency.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--model', 'resnet20',
        '--batch-size', '4', '--repeats', '1', '--warmup', '0',
        '--channels-last', '--out', str(tmp_path / 'record.json')
    ], tmp_path)
    rows = [line for line in out.splitlines() if line.startswith('| ')]
    assert [row.split(' | ')[0] for row in rows[1:]] == [
        '| plain', '| plain, K views', '| PS-KD', '| LSSKD',
        '| plain, channels-last', '| LSSKD, channels-last'
    ]
    for row in rows[1:]:
        seconds, ratio, memory = row.strip('| ').split(' | ')[1:]
        assert float(seconds) > 0 and float(ratio) > 0 and int(memory) > 0
    assert 'heap reuse' in out
    assert re.search(r'forward FLOPs: .* ratio 9\.25$', out, re.M)
    assert re.search(r'LSSKD efficiency .* = \d+\.\d\d$', out, re.M)
    for part in ('store', 'targets'):
        assert re.search(rf'share of the LSSKD step in {part}: \d', out)
    # The record holds what was printed, and the docs' row is its figures.
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from training_efficiency import efficiency_table, report
    record = json.loads((tmp_path / 'record.json').read_text())
    assert '\n'.join(report(record)) in out
    assert record['command'].endswith('--out ' + str(tmp_path /
                                                     'record.json'))
    seconds = record['seconds']
    row = efficiency_table([record])[-1].strip('| ').split(' | ')
    assert row[:3] == [
        'resnet20', '9.25', f'{seconds["LSSKD"] / seconds["plain"]:.2f} '
        f'({seconds["LSSKD"]:.3f} s / {seconds["plain"]:.3f} s)'
    ]
    assert row[4] == 'no 4-view network there'


FAKE_HSAKD = '''
import torch
from torch import nn


class Plain(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(3 * 32 * 32, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


class Auxiliary(Plain):
    """A joint-label head (4 x the classes) per stage, three stages."""
    def __init__(self, num_classes):
        super().__init__(num_classes)
        self.heads = nn.ModuleList(
            nn.Linear(3 * 32 * 32, 4 * num_classes) for _ in range(3))

    def forward(self, x, grad=False):
        assert grad
        return self.fc(x.flatten(1)), [h(x.flatten(1)) for h in self.heads]


def resnet20(num_classes):
    return Plain(num_classes)


def resnet20_aux(num_classes):
    return Auxiliary(num_classes)
'''


def test_the_official_steps_are_timed_beside_ours(tiny_cifar100, tmp_path):
    """With --hsakd the official plain and 4-view steps are timed in the
    same rounds, the checkout's path is not recorded, and the official
    FLOP ratio is the checkout's own arithmetic: here a linear classifier
    over the four views plus three heads of four times the classes on
    each, 4 + 3 x 4 x 4 = 52 plain forwards."""
    checkout = tmp_path / 'HSAKD'
    (checkout / 'models').mkdir(parents=True)
    (checkout / 'models/__init__.py').write_text(FAKE_HSAKD)
    run([
        sys.executable, 'tools/benchmarks/training_efficiency.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--model', 'resnet20',
        '--batch-size', '4', '--repeats', '1', '--warmup', '0', '--hsakd',
        str(checkout), '--out', str(tmp_path / 'record.json')
    ], tmp_path)
    record = json.loads((tmp_path / 'record.json').read_text())
    assert record['official_flop_ratio'] == 52
    assert '--hsakd PATH/TO/HSAKD' in record['command']
    assert str(checkout) not in json.dumps(record)
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from official_hsakd import PLAIN, VIEWS
    from training_efficiency import efficiency_table
    seconds = record['seconds']
    official = seconds[VIEWS] / seconds[PLAIN] / 52
    assert efficiency_table([record])[-1].split(' | ')[4] == \
        f'{official:.2f} (FLOP ratio 52.00)'
    # A student the official code has no 4-view network for is refused
    # before anything is timed.
    out = run([
        sys.executable, 'tools/benchmarks/training_efficiency.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--model', 'resnet18',
        '--hsakd', str(checkout)
    ], tmp_path, succeed=False)
    assert 'no 4-view (_aux) network for resnet18' in out


def test_benchmarks_page_shows_the_committed_efficiency_records():
    """docs/benchmarks.md's efficiency and bfloat16 tables are the
    committed records' (training_efficiency.py --update-docs)."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from training_efficiency import (BF16_MARKERS, EFFICIENCY_MARKERS, PAGE,
                                     bf16_table, efficiency_table,
                                     load_records)
    records = load_records()
    assert {r['model'] for r in records} >= {'resnet20', 'wrn16-2'}
    page = PAGE.read_text()
    for markers, table in ((EFFICIENCY_MARKERS, efficiency_table),
                           (BF16_MARKERS, bf16_table)):
        assert '\n'.join([markers[0], *table(records), markers[1]]) in page


def test_bf16_candidates_are_timed_beside_float32(tiny_cifar100,
                                                  monkeypatch, capfd):
    # In this process, so with glibc's defaults: heap reuse would stay on
    # in the test worker after the benchmark.
    out = run_main('tools/benchmarks/training_efficiency.py', [
        tiny_cifar100 / 'cifar-100-python', '--model', 'resnet20',
        '--batch-size', '4', '--repeats', '1', '--warmup', '0',
        '--channels-last', '--bf16', '--glibc-default'
    ], monkeypatch, capfd)
    rows = [line.split(' | ')[0] for line in out.splitlines()
            if line.startswith('| ')]
    assert rows[-4:] == ['| plain, bf16', '| LSSKD, bf16',
                         '| plain, channels-last, bf16',
                         '| LSSKD, channels-last, bf16']
    for name in ('plain', 'LSSKD', 'plain, channels-last',
                 'LSSKD, channels-last'):
        assert re.search(rf'^{name}: float32 / bfloat16 step time: '
                         r'\d+\.\d\d$', out, re.M), name


def test_op_count_finds_no_operation_per_image(tiny_cifar100, monkeypatch,
                                               capfd, tmp_path):
    """The shipped configs' steps dispatch as many operations at batch 2 as
    at batch 4; the record holds what the table shows."""
    data = tiny_cifar100 / 'cifar-100-python'
    out = run_main('tools/benchmarks/op_count.py', [
        data, '--model', 'resnet20', '--batch-sizes', '2', '4', '--out',
        tmp_path / 'counts.json'
    ], monkeypatch, capfd)
    rows = [line for line in out.splitlines() if line.startswith('| ours')]
    assert [row.split(' | ')[0] for row in rows] == [
        '| ours: plain', '| ours: PS-KD', '| ours: LSSKD']
    assert 'from batch 2 to 4: ours: plain +0, ours: PS-KD +0, ' \
        'ours: LSSKD +0' in out
    record = json.loads((tmp_path / 'counts.json').read_text())
    lsskd = record['rows']['ours: LSSKD']
    assert f'| ours: LSSKD | {lsskd["2"]["step"]} ' \
        f'({lsskd["2"]["optimizer"]}) |' in out
    assert lsskd['2'] == lsskd['4'] and lsskd['4']['step'] > \
        record['rows']['ours: plain']['4']['step'] > 0
    # mmpretrain's default collate_fn handles every image on its own.
    out = run_main('tools/benchmarks/op_count.py', [
        data, '--model', 'resnet20', '--batch-sizes', '2', '4', '--collate',
        'pseudo_collate'
    ], monkeypatch, capfd)
    assert re.search(r'ours: plain \+[1-9]', out)


def test_benchmarks_page_shows_the_committed_op_counts():
    """docs/benchmarks.md's operation counts are the committed record's
    (op_count.py --update-docs), and LSSKD's step dispatches at most a
    quarter more than the official 4-view step's."""
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from op_count import MARKERS, PAGE, RECORD, report
    record = json.loads(RECORD.read_text())
    block = '\n'.join([MARKERS[0], *report(record), MARKERS[1]])
    assert block in PAGE.read_text()
    batch = str(record['batch_sizes'][1])
    assert record['rows']['ours: LSSKD'][batch]['step'] <= 1.25 * record[
        'rows']['official HSSAKD: 4 views + 3 joint-label heads'][batch][
            'step']


def test_runs_at_once_are_timed_against_one_run_on_all_threads(
        tiny_cifar100, tmp_path):
    """jobs_throughput.py: one run on 2 threads against 2 runs at once on
    1 each; each row's machine figure is its runs over its step time."""
    out = run([
        sys.executable, 'tools/benchmarks/jobs_throughput.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--method', 'plain',
        '--batch-size', '4', '--steps', '2', '--warmup', '0', '--repeats',
        '1', '--threads', '2', '--jobs', '2', '--out', str(tmp_path / 'r.json')
    ], tmp_path)
    # The rows under the header (the separator starts with '|-').
    rows = [line.strip('| ').split(' | ') for line in out.splitlines()
            if line.startswith('| ')][1:]
    assert [row[:2] for row in rows] == [['1', '2'], ['2', '1']]
    for jobs, _, seconds, per_second in rows:
        # Both figures are printed to three decimals: a tiny step's
        # rounding alone can move its inverse by several per cent, and the
        # inverse is rounded too (a step of 2.04 s on a loaded machine
        # prints 0.490 for 0.4901).
        seconds = float(seconds)
        assert int(jobs) / (seconds + 5e-4) - 5e-4 <= float(per_second) \
            <= int(jobs) / (seconds - 5e-4) + 5e-4
    # The record holds the printed figures unrounded, and the printed ratio
    # is theirs (the rounded rows' ratio can be far off: under load a step
    # on two threads may take seconds, its throughput printing as 0.02).
    record = json.loads((tmp_path / 'r.json').read_text())
    for jobs, _, seconds, per_second in rows:
        setting = record['settings'][jobs]
        assert f'{setting["s_per_step"]:.3f}' == seconds
        assert f'{setting["steps_per_s"]:.3f}' == per_second
    one, two = (record['settings'][j]['steps_per_s'] for j in ('1', '2'))
    match = re.search(r'^2 runs at once / one run: (\d+\.\d\d) times', out,
                      re.M)
    assert match.group(1) == f'{two / one:.2f}'


def test_benchmarks_page_shows_the_committed_throughput_records():
    sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
    from jobs_throughput import MARKERS, PAGE, RECORDS, docs_table
    records = [json.loads(p.read_text())
               for p in sorted(RECORDS.glob('*.json'))]
    assert {r['method'] for r in records} == {'lsskd', 'plain'}
    block = '\n'.join([MARKERS[0], *docs_table(records), MARKERS[1]])
    assert block in PAGE.read_text()


def test_a_timed_run_that_fails_stops_the_benchmark(tiny_cifar100,
                                                    tmp_path):
    # A run that dies before the barrier must not leave the others
    # waiting there for ever.
    out = run([
        sys.executable, 'tools/benchmarks/jobs_throughput.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--method', 'plain',
        '--batch-size', '0', '--threads', '2'
    ], tmp_path, succeed=False)
    assert 'batch_size should be a positive integer' in out
    assert 'a timed run failed' in out
