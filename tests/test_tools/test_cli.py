"""The tools as a user runs them: train, resume, test, dist_train."""
import json
import sys

import pytest
import torch
from conftest import free_port, run

CONFIG = 'configs/lsskd/resnet18_cifar100.py'


def test_train_resume_and_test(tiny_cfg_options, tmp_path):
    work = tmp_path / 'work'
    options = ['--cfg-options', *tiny_cfg_options, 'train_cfg.max_epochs=1']
    run([sys.executable, 'tools/train.py', CONFIG, '--work-dir',
         str(work), *options], tmp_path)
    assert (work / 'epoch_1.pth').is_file()

    # --resume with no path picks the latest checkpoint in the work dir.
    out = run([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(work), '--resume', '--cfg-options', *tiny_cfg_options
    ], tmp_path)
    assert 'resumed epoch: 1' in out
    assert 'Restored the past-prediction store.' in out
    assert (work / 'epoch_2.pth').is_file()

    metrics = tmp_path / 'metrics.json'
    out = run([
        sys.executable, 'tools/test.py', CONFIG,
        str(work / 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'test'), '--out',
        str(metrics), '--out-item', 'metrics', '--cfg-options',
        *tiny_cfg_options
    ], tmp_path)
    result = json.loads(metrics.read_text())
    assert set(result) == {'accuracy/top1', 'accuracy/top5'}
    assert 0 <= result['accuracy/top1'] <= 100


@pytest.mark.skipif(
    sys.platform != 'linux', reason='torchrun with gloo on Linux')
def test_dist_train_and_test_launch_two_processes(tiny_cfg_options, tmp_path):
    work = tmp_path / 'dist'
    out = run([
        'bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir',
        str(work), '--cfg-options', *tiny_cfg_options,
        'train_cfg.max_epochs=1'
    ], tmp_path, PORT=free_port())
    assert 'Distributed training is not used' not in out
    ckpt = torch.load(work / 'epoch_1.pth', map_location='cpu')
    # Each rank's predictions reached the store: every sample was written.
    store = ckpt['lsskd_past_predictions']
    assert store['written_epoch'].tolist() == [0] * len(
        store['written_epoch'])

    metrics = tmp_path / 'dist_metrics.json'
    run([
        'bash', 'tools/dist_test.sh', CONFIG,
        str(work / 'epoch_1.pth'), '2', '--work-dir',
        str(tmp_path / 'dist_test'), '--out',
        str(metrics), '--out-item', 'metrics', '--cfg-options',
        *tiny_cfg_options
    ], tmp_path, PORT=free_port())
    assert 'accuracy/top1' in json.loads(metrics.read_text())
