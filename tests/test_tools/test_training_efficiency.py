"""The training-efficiency benchmark runs end to end on tiny data.

Times are not checked (no timed tests); the FLOP ratio is, because it is
exact: ResNet-20's LSSKD training forward is HSSAKD's arithmetic, 9.25 times
a plain forward (the issue's reference figure).
"""
import re
import sys

from conftest import run


def test_benchmark_prints_every_candidate_and_the_flop_ratio(
        tiny_cifar100, tmp_path):
    out = run([
        sys.executable, 'tools/benchmarks/training_efficiency.py',
        str(tiny_cifar100 / 'cifar-100-python'), '--model', 'resnet20',
        '--batch-size', '4', '--repeats', '1', '--warmup', '0',
        '--channels-last'
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
