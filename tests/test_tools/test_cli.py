"""The tools as a user runs them: train, resume, test, dist_train."""
import json
import signal
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, free_port, run

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
    """Two gloo processes, two epochs, 19 images: the sampler pads one
    image into both ranks' share. Every rank must end with the same, full
    store and find every sample's past prediction in epoch 2."""
    config = tmp_path / 'dist.py'
    config.write_text(f"""_base_ = [{str(ROOT / CONFIG)!r}]
custom_imports = dict(imports=['mmlsskd', 'rank_store_dump', 'exit_threads'])
custom_hooks = [
    dict(type='PastPredictionHook', alpha_T=0.8),
    dict(type='EpochSeedHook'),
    dict(type='RankStoreDumpHook'),
]
""")
    work = tmp_path / 'dist'
    (tmp_path / 'train_exit').mkdir()
    out = run([
        'bash', 'tools/dist_train.sh',
        str(config), '2', '--work-dir',
        str(work), '--cfg-options', *tiny_cfg_options,
        'train_dataloader.dataset.indices=19'
    ], tmp_path, PORT=free_port(),
        PYTHONPATH=str(ROOT / 'tests/helpers'),
        EXIT_THREADS_DIR=str(tmp_path / 'train_exit'))
    assert 'Distributed training is not used' not in out
    assert (work / 'epoch_2.pth').is_file()
    assert_process_group_joined(tmp_path / 'train_exit')

    dumps = {(rank, epoch):
             torch.load(work / f'rank{rank}_epoch{epoch}.pth',
                        weights_only=False)
             for rank in (0, 1) for epoch in (0, 1)}
    for epoch in (0, 1):
        stores = [dumps[rank, epoch]['store'] for rank in (0, 1)]
        # Every image written in this epoch, on both ranks alike.
        assert stores[0]['written_epoch'].tolist() == [epoch] * 19
        for key in stores[0]:
            assert torch.equal(stores[0][key], stores[1][key]), key
        assert torch.allclose(stores[0]['final'].sum(1), torch.ones(19))
    found = [dumps[rank, 1]['found'] for rank in (0, 1)]
    seen = [
        set(torch.cat([i for e, i, _ in f if e == 0]).tolist())
        for f in found
    ]
    # The padded shares: 10 images per rank, one image in both.
    assert [len(s) for s in seen] == [10, 10]
    padded = seen[0] & seen[1]
    assert len(padded) == 1 and len(seen[0] | seen[1]) == 19
    for f in found:
        # Epoch 2 found a past prediction for every sample it looked up.
        assert all(w.all() for e, _, w in f if e == 1)
        # In epoch 1 only the padded image can have one: written by the
        # other rank's earlier step of the same epoch.
        early = {
            int(i) for e, idx, w in f if e == 0 for i in idx[w]
        }
        assert early <= padded
    ckpt = torch.load(work / 'epoch_2.pth', map_location='cpu')
    assert torch.equal(ckpt['lsskd_past_predictions']['final'],
                       dumps[0, 1]['store']['final'])

    metrics = tmp_path / 'dist_metrics.json'
    test_config = tmp_path / 'dist_test.py'
    test_config.write_text(f"""_base_ = [{str(ROOT / CONFIG)!r}]
custom_imports = dict(imports=['mmlsskd', 'exit_threads'])
""")
    (tmp_path / 'test_exit').mkdir()
    run([
        'bash', 'tools/dist_test.sh', str(test_config),
        str(work / 'epoch_2.pth'), '2', '--work-dir',
        str(tmp_path / 'dist_test'), '--out',
        str(metrics), '--out-item', 'metrics', '--cfg-options',
        *tiny_cfg_options
    ], tmp_path, PORT=free_port(),
        PYTHONPATH=str(ROOT / 'tests/helpers'),
        EXIT_THREADS_DIR=str(tmp_path / 'test_exit'))
    assert 'accuracy/top1' in json.loads(metrics.read_text())
    assert_process_group_joined(tmp_path / 'test_exit')


def assert_process_group_joined(exit_dir):
    """Both ranks reached interpreter exit with gloo's threads joined:
    left running into the shutdown, they can abort a rank whose run
    succeeded (an occasional exit -6 under load)."""
    threads = {
        path.stem: path.read_text().split()
        for path in sorted(exit_dir.glob('rank*.txt'))
    }
    assert set(threads) == {'rank0', 'rank1'}
    for rank, names in threads.items():
        assert not [n for n in names if 'gloo' in n], (rank, names)


@pytest.mark.parametrize('script, args, expected', [
    ('tools/slurm_train.sh', ['part', 'job', CONFIG, 'work', '--amp'],
     ['-p', 'part', '--job-name=job', '--gres=gpu:4', '--ntasks=8',
      '--ntasks-per-node=4', 'tools/train.py', CONFIG, '--work-dir=work',
      '--launcher=slurm', '--amp']),
    ('tools/slurm_test.sh', ['part', 'job', CONFIG, 'ckpt.pth'],
     ['-p', 'part', '--job-name=job', 'tools/test.py', CONFIG, 'ckpt.pth',
      '--launcher=slurm']),
])
def test_slurm_scripts_call_srun_like_mmpretrain(tmp_path, script, args,
                                                 expected):
    # A stand-in srun that records its arguments.
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > '
                    f'{tmp_path}/srun_args\n')
    fake.chmod(0o755)
    run(['bash', script, *args], tmp_path,
        PATH=f'{tmp_path}:/usr/bin:/bin', GPUS='8', GPUS_PER_NODE='4')
    called = (tmp_path / 'srun_args').read_text().split('\n')
    called = [a.replace(str(ROOT) + '/', '') for a in called]
    positions = [called.index(a) for a in expected]
    assert positions == sorted(positions)


def test_a_second_run_in_a_held_work_dir_refuses_to_start(tiny_cfg_options,
                                                          tmp_path):
    """Two tools/train.py runs in one work_dir would overwrite each other's
    checkpoints; a killed run's lock does not block the next run."""
    work = tmp_path / 'work'
    holder = subprocess.Popen([
        sys.executable, '-c',
        'import sys, time; from mmlsskd.utils import WorkDirLock; '
        f'lock = WorkDirLock({str(work)!r}).acquire(); print("held", '
        'flush=True); '
        'time.sleep(600)'
    ], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        train = [sys.executable, 'tools/train.py', CONFIG, '--work-dir',
                 str(work), '--cfg-options', *tiny_cfg_options,
                 'train_cfg.max_epochs=1']
        out = run(train, tmp_path, succeed=False)
        assert (f'work_dir: {work} is in use by another training run (pid '
                f'{holder.pid} on ') in out
        assert 'give this run its own --work-dir' in out
        assert not list(work.glob('*.pth'))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run(train, tmp_path)  # the killed holder's lock is gone with it
    assert (work / 'epoch_1.pth').is_file()


def test_tools_print_a_refusal_without_a_traceback(tiny_cfg_options,
                                                   tmp_path):
    """A refusal the project raised on purpose is its message and exit
    status 1 in every tool; the traceback would bury it."""
    train = run([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', *tiny_cfg_options,
        'model.view_transform.angles=[90,0]', 'custom_hook=[]'
    ], tmp_path, succeed=False, status=1)
    test = run([
        sys.executable, 'tools/test.py', CONFIG,
        str(tmp_path / 'missing.pth'), '--work-dir', str(tmp_path / 'work')
    ], tmp_path, succeed=False, status=1)
    export = run([
        sys.executable, 'tools/deployment/export_student.py', CONFIG,
        str(tmp_path / 'missing.pth')
    ], tmp_path, succeed=False, status=1)
    for out, message in (
            (train, 'LSSKDConfigError: view_transform.angles: must start '
             'with 0'),
            (test, f'LSSKDCheckpointError: test: checkpoint '
             f'{tmp_path}/missing.pth does not exist'),
            (export, f'{tmp_path}/missing.pth')):
        assert message in out, out[-2000:]
    for out in (train, test, export):
        assert 'Traceback' not in out, out[-3000:]
    # A misspelt top-level key is reported before anything is built.
    assert "top-level key 'custom_hook' is read by nothing and looks like " \
        "'custom_hooks'" in train
