"""What BN recalibration does to one checkpoint of the CIFAR study.

Recomputes the BN statistics of a study checkpoint with the config's
PreciseBNHook, once, as after the given epoch (the same training samples in
the same order as in training), on the unrotated training images or, with
``--views``, on the four views the backbone normalised in training, and
evaluates on the config's test set. On one checkpoint the two tell the
recalibration's own effect apart from everything training did; the views
variant gives a plain LSSKD run's accuracy back (seed 0 of the study:
23.31 against 23.33).

Example::

    python tools/analysis_tools/bn_recalibration.py \\
        work_dirs/study/lsskd-precise-bn_seed1/lsskd-precise-bn_resnet20.py \\
        work_dirs/study/lsskd-precise-bn_seed1/epoch_12.pth --epoch 11 \\
        --views --out docs/results/bn_recalibration/run.json
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

from mmengine.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
from cifar100_cpu_study import evaluate_checkpoint  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'config', help='the run config (PreciseBNHook is added if missing)')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--epoch', type=int, required=True,
        help='recalibrate as after this 0-based epoch (the last: epochs-1)')
    parser.add_argument(
        '--views', action='store_true',
        help='recompute the statistics over the four views, not the '
        'unrotated images')
    parser.add_argument('--out', help='write the figures to this JSON file')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    hooks = cfg.get('custom_hooks', [])
    if not any(h.get('type') == 'PreciseBNHook' for h in hooks):
        # The shipped lsskd-precise-bn configs' hook.
        cfg.custom_hooks = hooks + [
            dict(type='PreciseBNHook', num_samples=8192,
                 priority='ABOVE_NORMAL')
        ]
    with tempfile.TemporaryDirectory() as work_dir:
        config = Path(work_dir) / 'recalibration.py'
        cfg.dump(str(config))
        metrics = evaluate_checkpoint(
            config, Path(args.checkpoint), Path(work_dir),
            dict(test=cfg.test_dataloader.dataset),
            precise_bn_epoch=args.epoch, bn_on_views=args.views)['test']
    record = dict(
        config=args.config, checkpoint=args.checkpoint, epoch=args.epoch,
        statistics_on='four views' if args.views else 'unrotated images',
        test=metrics)
    print(json.dumps(record, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + '\n')


if __name__ == '__main__':
    main()
