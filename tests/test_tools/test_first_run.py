"""tools/benchmarks/first_run.py trains a config as a user does and records
what it learned; get_started.md states the recorded run."""
import json
import re

from conftest import ROOT, run_main

FIRST_RUN = 'tools/benchmarks/first_run.py'
QUICK = 'configs/lsskd/lsskd_resnet20_1xb64-5e_cifar100-10pct.py'


def test_first_run_records_the_runs_own_last_evaluation(
        tiny_cifar100, tmp_path, monkeypatch, capfd):
    """The quick config on tiny data for one epoch: the file holds the
    top-1 the run's log reports, and the command that trained it."""
    data = str(tiny_cifar100)
    options = [
        'train_dataloader.dataset.dataset.type=LocalCIFAR100',
        f'train_dataloader.dataset.dataset.data_root={data}',
        'val_dataloader.dataset.type=LocalCIFAR100',
        f'val_dataloader.dataset.data_root={data}',
        'test_dataloader.dataset.type=LocalCIFAR100',
        f'test_dataloader.dataset.data_root={data}',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0'
    ]
    out = run_main(FIRST_RUN, [
        '--results-dir', tmp_path, '--train-args', '--cfg-options', *options
    ], monkeypatch, capfd)
    record = json.loads(
        (tmp_path / 'lsskd_resnet20_1xb64-5e_cifar100-10pct.json').read_text())
    logged = re.findall(r'Epoch\(val\) \[1\]\S*\s+accuracy/top1: ([\d.]+)',
                        out)
    assert logged and float(logged[-1]) == round(record['top1'], 4)
    assert record['epochs'] == 1 and record['wall_s'] > 0
    assert record['command'] == ' '.join(
        ['python tools/train.py', QUICK, '--cfg-options', *options])
    assert record['config'] == QUICK


def test_get_started_states_the_recorded_first_run(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / 'tools/benchmarks'))
    from first_run import MARKERS, PAGE, result_path, sentence
    record = json.loads(result_path(QUICK).read_text())
    block = '\n'.join([MARKERS[0], *sentence(record), MARKERS[1]])
    assert block in PAGE.read_text()
    assert f'{record["top1"]:.2f} % test top-1' in block
