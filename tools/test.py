"""Evaluate a checkpoint (same flags as mmpretrain's tools/test.py).

For an LSSKD config only the wrapped classifier runs: unrotated images, no
auxiliary branch, top-1/top-5 of the final classifier.
"""
import argparse
import os
import os.path as osp
from copy import deepcopy

import mmengine
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmlsskd  # noqa: F401  (patches mmrazor and checkpoint loading first)
from mmlsskd.datasets.dataset_download import explain_failed_download
from mmlsskd.engine import CheckpointFitHook
from mmlsskd.utils import (destroy_process_group,
                           refusals_without_traceback, setup_cpu_distributed)
from mmlsskd.utils.checkpoint_checks import check_checkpoint_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='the file to write results to')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='write the metrics or the predictions to --out '
        '(default: predictions)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs merged into the '
        'config')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision testing')
    parser.add_argument(
        '--show-dir', help='the dir to save visualized predictions')
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window')
    parser.add_argument(
        '--interval', type=int, default=1, help='visualize every N samples')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per shown image')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloader')
    parser.add_argument(
        '--tta', action='store_true', help='flip test-time augmentation')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if args.out is None and args.out_item is not None:
        parser.error('--out-item needs --out to name the output file')
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line flags to the config: --cfg-options first, as
    mmpretrain does, so that they address the config's own keys (``model``
    before --tta wraps it)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.test_cfg.fp16 = True

    if args.show or args.show_dir is not None:
        visualization = cfg.default_hooks.get('visualization')
        if visualization is None:
            raise ValueError(
                '--show/--show-dir need default_hooks.visualization='
                "dict(type='VisualizationHook') in the config.")
        visualization.update(
            enable=True,
            show=args.show,
            wait_time=args.wait_time,
            out_dir=args.show_dir,
            interval=args.interval)

    if args.tta:
        cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
        if 'tta_pipeline' not in cfg:
            pipeline = deepcopy(cfg.test_dataloader.dataset.pipeline)
            pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[[
                    dict(type='RandomFlip', prob=1.),
                    dict(type='RandomFlip', prob=0.)
                ], [pipeline[-1]]])
            cfg.tta_pipeline = pipeline
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    cfg.test_dataloader.setdefault('pin_memory', True)
    cfg.test_dataloader.setdefault('collate_fn', dict(type='default_collate'))
    if args.no_pin_memory:
        cfg.test_dataloader.pin_memory = False
    return cfg


def main() -> None:
    args = parse_args()
    # A missing or damaged file fails here, before the model and data.
    check_checkpoint_file(args.checkpoint, 'test')
    cfg = merge_args(Config.fromfile(args.config), args)
    setup_cpu_distributed(cfg, args.launcher)
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg else RUNNERS.build(cfg))
    # mmengine loads non-strictly: a checkpoint of another model would be
    # tested as random weights, with a warning only.
    runner.register_hook(CheckpointFitHook('test'))
    if args.out and args.out_item in ('pred', None):
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    with explain_failed_download(cfg):
        metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)


if __name__ == '__main__':
    try:
        with refusals_without_traceback():
            main()
    finally:
        destroy_process_group()
