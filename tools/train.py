"""Train a model with LSSKD (same flags as mmpretrain's tools/train.py)."""
import argparse
import logging
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

import mmlsskd  # noqa: F401  (patches mmrazor and checkpoint loading first)
from mmlsskd.utils import (destroy_process_group, lock_work_dir,
                           refusals_without_traceback,
                           reuse_freed_heap_memory, setup_cpu_distributed)
from mmlsskd.datasets.dataset_download import explain_failed_download
from mmlsskd.utils.checkpoint_checks import latest_checkpoint
from mmlsskd.utils.config_keys import unread_setting_warnings
from mmlsskd.engine.optimizers import cpu_has_amx, cpu_runs_bf16_natively
from mmlsskd.utils.errors import config_error


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or without a path from the '
        'latest checkpoint in the work directory')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual over the base batch size')
    parser.add_argument(
        '--no-pin-memory',
        action='store_true',
        help='disable pin_memory in the dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs merged into the '
        'config, e.g. train_cfg.max_epochs=10 or key="[a,b]"')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def set_mixed_precision(optim_wrapper: dict, asked_by: str = '--amp') -> None:
    """``--amp``: float16 with a dynamic loss scale on a GPU (mmengine's
    ``AmpOptimWrapper``), bfloat16 elsewhere (``BF16AmpOptimWrapper``).

    ``asked_by`` names what asked for it, for messages: the flag, or a
    config's own ``optim_wrapper.type``."""
    if has_accelerator():
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
        return
    # The CPU autocasts to bfloat16 only, which needs no loss scale.
    check_cpu_bfloat16(optim_wrapper, asked_by)
    optim_wrapper.pop('loss_scale', None)
    optim_wrapper.type = 'BF16AmpOptimWrapper'


def has_accelerator() -> bool:
    """Whether mmengine trains on a GPU (or NPU, MLU, MUSA) here."""
    return any(available() for available in (
        is_cuda_available, is_npu_available, is_mlu_available,
        is_musa_available))


def check_cpu_bfloat16(optim_wrapper: dict, asked_by: str) -> None:
    """Refuse bfloat16 training on a CPU that would emulate it, and warn
    where it runs natively but without AMX (no faster than float32)."""
    dtype = optim_wrapper.pop('dtype', None)
    if dtype not in (None, 'bfloat16', torch.bfloat16):
        raise config_error(
            'optim_wrapper.dtype', f'{asked_by} without a GPU trains in '
            f'bfloat16 (the CPU autocasts to nothing else), not {dtype}',
            'Leave optim_wrapper.dtype out, or set it to bfloat16.')
    if not cpu_runs_bf16_natively():
        raise config_error(
            asked_by, f'without a GPU it trains in bfloat16, which this CPU '
            f'({torch.backends.cpu.get_cpu_capability()}) has no native '
            f'support for: emulated, it trains many times slower than '
            f'float32 (16x for a ResNet-20 step on an AVX2 CPU)',
            f'Train in float32 on this machine: without {asked_by} (a '
            f'config that sets its wrapper takes --cfg-options '
            f'optim_wrapper.type=OptimWrapper). bfloat16 speeds up '
            f'training on a GPU or on a CPU with AMX.')
    if not cpu_has_amx():
        print_log(
            f'{asked_by}: this CPU runs bfloat16 natively (AVX-512 BF16) but '
            'has no AMX tiles, so bfloat16 halves the activation memory but '
            'may not train faster than float32: on a 2-core Xeon without AMX '
            'a ResNet-20 LSSKD step took 1.22x as long (docs/benchmarks.md). '
            f'Leave {asked_by} out if speed is what you want.',
            logger='current', level=logging.WARNING)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line flags to the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher

    # work_dir: command line, then config, then the config's name.
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # After --cfg-options, which may set the precision (optim_wrapper.dtype).
    if args.amp:
        set_mixed_precision(cfg.optim_wrapper)
    elif cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        # A config that asks for mixed precision itself (as some mmpretrain
        # recipes do) means what --amp means: without a GPU mmengine's
        # wrapper only asserts one, so the CPU gets bfloat16 the same way.
        set_mixed_precision(
            cfg.optim_wrapper,
            asked_by="optim_wrapper.type='AmpOptimWrapper'")
    elif (cfg.get('optim_wrapper', {}).get('type') == 'BF16AmpOptimWrapper'
          and not has_accelerator()):
        # bfloat16 asked for by name (the study's configs): as above, never
        # emulated unannounced on a CPU without it.
        check_cpu_bfloat16(
            cfg.optim_wrapper,
            asked_by="optim_wrapper.type='BF16AmpOptimWrapper'")

    # Dataloader defaults go in after --cfg-options, so that a num_workers
    # set there decides whether workers can persist.
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is None:
            continue
        loader.setdefault('pin_memory', True)
        loader.setdefault('persistent_workers',
                          loader.get('num_workers', 0) > 0)
        loader.setdefault('collate_fn', dict(type='default_collate'))
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False
    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    for warning in unread_setting_warnings(cfg):
        print_log(warning, logger='current', level=logging.WARNING)
    # Held until the process ends: a second run in this work_dir would
    # overwrite this one's checkpoints.
    lock = lock_work_dir(cfg.work_dir)  # noqa: F841
    if cfg.get('resume') and cfg.get('load_from') is None:
        # mmengine trusts last_checkpoint as written (empty, or the old
        # path of a work dir moved since).
        path, why = latest_checkpoint(cfg.work_dir)
        if why is not None:
            print_log(f'resume: {why}.', logger='current',
                      level=logging.WARNING)
            cfg.load_from = path
    setup_cpu_distributed(cfg, args.launcher)
    # On the CPU, LSSKD's four-view activations are large enough for glibc
    # to map and unmap them every step; keep them on the heap instead.
    heap_reuse = reuse_freed_heap_memory()
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg else RUNNERS.build(cfg))
    if heap_reuse:
        runner.logger.info(
            'CPU training: freed tensor memory stays on the heap for reuse '
            '(glibc mmap and trimming off); set MALLOC_MMAP_MAX_ in the '
            'environment to decide otherwise.')
    with explain_failed_download(cfg):
        runner.train()


if __name__ == '__main__':
    try:
        with refusals_without_traceback():
            main()
    finally:
        destroy_process_group()
