import contextlib
import copy
import functools
import http.server
import os
import pickle
import runpy
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import mmlsskd  # noqa: F401  (registers components, patches mmrazor)

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / 'configs/lsskd/resnet18_cifar100.py'
NUM_CLASSES = 5
TRAIN_PER_CLASS = 4
TEST_PER_CLASS = 2

# Keep the 2-core CI machine responsive and the runs deterministic.
torch.set_num_threads(1)
os.environ.setdefault('OMP_NUM_THREADS', '1')


def write_tiny_cifar(root: Path,
                     seed: int = 0,
                     num_names: int = NUM_CLASSES) -> Path:
    """Write a tiny CIFAR-100-layout dataset (pickles) under ``root``:
    images of ``NUM_CLASSES`` classes, ``num_names`` class names in meta."""
    rng = np.random.default_rng(seed)
    folder = root / 'cifar-100-python'
    folder.mkdir(parents=True, exist_ok=True)
    for split, per_class in (('train', TRAIN_PER_CLASS),
                             ('test', TEST_PER_CLASS)):
        labels = [c for c in range(NUM_CLASSES) for _ in range(per_class)]
        # Class-dependent brightness, so a few steps can learn something.
        data = np.stack([
            np.clip(rng.normal(40 + 40 * c, 30, 3 * 32 * 32), 0, 255)
            for c in labels
        ]).astype(np.uint8)
        with open(folder / split, 'wb') as f:
            pickle.dump({'data': data, 'fine_labels': labels}, f)
    with open(folder / 'meta', 'wb') as f:
        pickle.dump(
            {'fine_label_names': [f'class{c}' for c in range(num_names)]},
            f)
    return root


@pytest.fixture(autouse=True, scope='session')
def config_text_made_once():
    """mmengine redoes two pure computations on every config, which the
    tests' many tiny runs repeat on the same inputs; each is done once here,
    with the same results.

    - ``Config.pretty_text`` formats the config with yapf each time a run
      logs, dumps or checkpoints it (about 0.5 s a call on a CI core, seven
      in a tiny two-epoch run).
    - A ``mmpretrain::`` base config is found by reading all of
      mmpretrain's model-index files, on every ``Config.fromfile``.
    """
    import mmengine.config.config as config_module
    import mmengine.config.utils as config_utils
    yapf_format = config_module.FormatCode
    formatted = functools.lru_cache(maxsize=256)(
        lambda source, style: yapf_format(source, style_config=dict(style)))
    metainfo = functools.lru_cache(maxsize=None)(
        config_utils._get_cfg_metainfo)

    def format_code(source, style_config=None, **options):
        if options or not isinstance(style_config, dict):
            return yapf_format(source, style_config=style_config, **options)
        return formatted(source, tuple(sorted(style_config.items())))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_module, 'FormatCode', format_code)
        patch.setattr(config_utils, '_get_cfg_metainfo',
                      lambda *args: copy.deepcopy(metainfo(*args)))
        yield


@pytest.fixture(scope='session')
def tiny_cifar(tmp_path_factory) -> Path:
    return write_tiny_cifar(tmp_path_factory.mktemp('data'))


@pytest.fixture(scope='session')
def tiny_cifar100(tmp_path_factory) -> Path:
    """Tiny images that declare CIFAR-100's 100 classes, for the shipped
    configs' 100-way heads."""
    return write_tiny_cifar(tmp_path_factory.mktemp('data100'), num_names=100)


def tiny_architecture(num_classes: int = NUM_CLASSES) -> dict:
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR',
            depth=18,
            base_channels=4,
            out_indices=(0, 1, 2, 3)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead', num_classes=num_classes, in_channels=32))


def tiny_lsskd(**kwargs) -> dict:
    cfg = dict(
        type='LSSKD',
        architecture=tiny_architecture(),
        aux_neck=dict(type='AuxiliaryBranchNeck', input_size=32))
    cfg.update(kwargs)
    return cfg


@pytest.fixture
def tiny_cfg_options(tiny_cifar) -> list:
    """--cfg-options that shrink the shipped config to the tiny data."""
    return tiny_options(tiny_cifar)


def tiny_options(data_root: Path) -> list:
    """--cfg-options that shrink the shipped LSSKD config to the tiny data
    under ``data_root`` (two epochs)."""
    root = str(data_root)
    return [
        f'train_dataloader.dataset.data_root={root}',
        'train_dataloader.dataset.type=LocalCIFAR100',
        'train_dataloader.batch_size=8',
        'train_dataloader.num_workers=0',
        f'val_dataloader.dataset.data_root={root}',
        'val_dataloader.dataset.type=LocalCIFAR100',
        'val_dataloader.num_workers=0',
        f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.type=LocalCIFAR100',
        'test_dataloader.num_workers=0',
        'model.architecture.backbone.base_channels=4',
        f'model.architecture.head.num_classes={NUM_CLASSES}',
        'model.architecture.head.in_channels=32',
        f'data_preprocessor.num_classes={NUM_CLASSES}',
        'train_cfg.max_epochs=2',
        'default_hooks.logger.interval=1',
    ]


def free_port() -> str:
    """A port nobody listens on now, so parallel runs do not collide."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def run(args, tmp_path, succeed: bool = True, status: int = None,
        **env) -> str:
    """Run a tool from the repository root as a user would; its output.

    With ``succeed=False`` the tool must fail (exit status not 0), with
    ``status`` if given."""
    env = {
        **os.environ, 'OMP_NUM_THREADS': '1',
        'PYTHON': sys.executable,
        **env
    }
    result = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    (tmp_path / 'log.txt').write_text(result.stdout + result.stderr)
    if succeed:
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        assert result.returncode != 0, result.stdout[-3000:]
        if status is not None:
            assert result.returncode == status, result.stderr[-3000:]
    return result.stdout + result.stderr


def run_main(script, args, monkeypatch, capfd, succeed: bool = True) -> str:
    """Run a tool in this process with ``args``, as ``python SCRIPT ARGS``
    runs it (as ``__main__``); its output, with that of the processes it
    starts.

    For tests of what a tool does rather than of its interpreter: each
    :func:`run` pays an import of torch, mmengine and mmpretrain (~8 s on
    a CI core). test_cli.py runs the scripts themselves. With
    ``succeed=False`` the tool must exit with an error; its message ends
    the output."""
    path = ROOT / script
    monkeypatch.syspath_prepend(str(path.parent))  # its sibling modules
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr('sys.argv', [script, *map(str, args)])
    try:
        runpy.run_path(str(path), run_name='__main__')
        code = None
    except SystemExit as exit_:
        code = exit_.code
    out = capfd.readouterr()
    if succeed:
        assert code in (None, 0), f'{out.out}{out.err}{code}'[-3000:]
    else:
        assert code not in (None, 0), out.out[-3000:]
    return f'{out.out}{out.err}{code or ""}'


def make_cfg(options, work_dir, **extra) -> Config:
    """The shipped LSSKD config with ``--cfg-options`` and extra keys."""
    cfg = Config.fromfile(str(CONFIG))
    parsed = {}
    for option in options:
        key, value = option.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    cfg.merge_from_dict(parsed)
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(extra)
    return cfg


def train_one_epoch(options, work_dir) -> Path:
    """Train one epoch into ``work_dir``; return the work dir."""
    Runner.from_cfg(
        make_cfg(options, work_dir, train_cfg=dict(max_epochs=1))).train()
    return work_dir


def resuming_runner(options, work_dir, checkpoint=None, **extra) -> Runner:
    """A Runner that resumes (``--resume [CHECKPOINT]``)."""
    return Runner.from_cfg(
        make_cfg(
            options,
            work_dir,
            resume=True,
            load_from=None if checkpoint is None else str(checkpoint),
            **extra))


def hook_of(runner):
    """The run's PastPredictionHook."""
    from mmlsskd.engine import PastPredictionHook
    return next(h for h in runner.hooks if isinstance(h, PastPredictionHook))


@contextlib.contextmanager
def serving(directory):
    """``directory`` over HTTP on a free local port; its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(directory))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()
