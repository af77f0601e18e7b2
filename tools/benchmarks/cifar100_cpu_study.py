"""Train and compare CE, label smoothing, PS-KD and LSSKD on real CIFAR-100
at a scale a CPU finishes in about an hour.

Every method trains the same backbone from the shipped configs with the same
seed, the same stratified training subset and the same number of epochs (the
paper's step schedule compressed to them), and is evaluated on the full test
set after every epoch. The script prints one table (final-epoch top-1/top-5,
wall time, final top-1 of every LSSKD auxiliary classifier) and saves a plot
of every branch's test accuracy across epochs next to the final
classifiers' (the LSSKD paper's Figure 6 kind of picture).

Example::

    python tools/benchmarks/cifar100_cpu_study.py \\
        ../shared/data/cifar-100-python --fraction 0.2 --epochs 12
"""
import argparse
import json
import os.path as osp
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mmengine.config import Config, DictAction

from cifar100_students import (add_student_arguments,  # beside this script
                               local_cifar100)

ROOT = Path(__file__).resolve().parents[2]
METHODS = {
    'ce': 'configs/baselines/{model}_1xb64-240e_cifar100.py',
    'lbs': 'configs/baselines/{model}_1xb64-240e-lbs_cifar100.py',
    'pskd': 'configs/pskd/pskd_{model}_1xb64-240e_cifar100.py',
    'lsskd': 'configs/lsskd/lsskd_{model}_1xb64-240e_cifar100.py',
}
LABELS = dict(
    ce='Cross-entropy', lbs='Label smoothing 0.1', pskd='PS-KD',
    lsskd='LSSKD')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser)
    parser.add_argument(
        '--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        '--fraction', type=float, default=0.2,
        help='share of every class of the training set to train on')
    parser.add_argument('--epochs', type=int, default=12)
    parser.add_argument(
        '--val-interval', type=int, default=2,
        help='evaluate every this many epochs (and after the last)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--work-dir', default='work_dirs/cifar100_cpu_study',
        help='where the configs, logs and results go')
    parser.add_argument(
        '--plot', default=None,
        help='PNG path of the accuracy plot (default: in --work-dir)')
    parser.add_argument(
        '--report-only', action='store_true',
        help='print the table and plot of an earlier run in --work-dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='extra key=value overrides for every method (tools/train.py)')
    return parser.parse_args()


def study_config(method: str, args: argparse.Namespace) -> Config:
    """The shipped config of ``method``, shrunk to the study's scale."""
    cfg = Config.fromfile(str(ROOT / METHODS[method].format(model=args.model)))
    train_set = local_cifar100(args.data, 'train',
                               cfg.train_dataloader.dataset.pipeline)
    if args.fraction < 1:
        train_set = dict(
            type='ClassStratifiedSubset', dataset=train_set,
            fraction=args.fraction, seed=args.seed)
    test_set = local_cifar100(args.data, 'test',
                              cfg.val_dataloader.dataset.pipeline)
    # Two cores: data loading in the main process costs less than workers
    # competing with the training threads.
    cfg.train_dataloader.dataset = train_set
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    for name in ('val_dataloader', 'test_dataloader'):
        cfg[name].dataset = test_set
        cfg[name].update(
            num_workers=0, persistent_workers=False, batch_size=256)

    scale = args.epochs / cfg.train_cfg.max_epochs
    cfg.train_cfg.update(
        max_epochs=args.epochs, val_interval=args.val_interval)
    cfg.param_scheduler.milestones = [
        max(1, round(m * scale)) for m in cfg.param_scheduler.milestones
    ]
    cfg.randomness = dict(seed=args.seed)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=args.epochs, max_keep_ckpts=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    if method == 'lsskd':
        # Follow every auxiliary classifier on the test set too.
        cfg.model.evaluate_branches = True
        cfg.val_evaluator = [
            dict(type='Accuracy', topk=(1, 5)),
            dict(type='BranchAccuracy')
        ]
        cfg.test_evaluator = cfg.val_evaluator
    cfg.merge_from_dict(args.cfg_options)
    return cfg


def read_run(work_dir: Path) -> dict:
    """Per-epoch validation results and the median logged seconds per
    training iteration, from the newest run's scalars.json."""
    runs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    if not runs:
        raise FileNotFoundError(f'No scalars.json under {work_dir}.')
    with open(runs[-1]) as f:
        records = [json.loads(line) for line in f]
    # The median is robust to a few windows slowed by other processes.
    iter_times = [r['time'] for r in records if 'loss' in r and 'time' in r]
    return dict(
        epochs=[r for r in records if 'accuracy/top1' in r],
        s_per_iter=statistics.median(iter_times))


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, result in results.items():
        epochs = [r['step'] for r in result['epochs']]
        ax.plot(epochs, [r['accuracy/top1'] for r in result['epochs']],
                marker='o', linewidth=2, label=f'{LABELS[method]} (final)')
        branch_keys = sorted(k for k in result['epochs'][-1]
                             if k.startswith('aux/branch'))
        for key in branch_keys:
            s = key[len('aux/branch'):].split('_')[0]
            ax.plot(epochs, [r[key] for r in result['epochs']],
                    linestyle='--', label=f'{LABELS[method]} branch {s}')
    ax.set_xlabel('epoch')
    ax.set_ylabel('CIFAR-100 test top-1 (%)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    work_dir = Path(args.work_dir).resolve()
    results, setting = {}, vars(args)
    if args.report_only:
        with open(work_dir / 'results.json') as f:
            saved = json.load(f)
        results, setting = saved['results'], saved['args']
    for method in args.methods:
        method_dir = work_dir / method
        if not args.report_only:
            method_dir.mkdir(parents=True, exist_ok=True)
            config = method_dir / f'{method}_{args.model}.py'
            study_config(method, args).dump(str(config))
            start = time.perf_counter()
            subprocess.run([
                sys.executable, str(ROOT / 'tools/train.py'), str(config),
                '--work-dir', str(method_dir)
            ], check=True)
            results[method] = dict(wall_s=time.perf_counter() - start)
            print(f'{method}: {results[method]["wall_s"] / 60:.1f} min',
                  flush=True)
        results[method].update(read_run(method_dir))

    with open(work_dir / 'results.json', 'w') as f:
        json.dump(dict(args=setting, results=results), f, indent=2)
    plot_path = Path(args.plot) if args.plot else work_dir / 'accuracy.png'
    plot(results, plot_path)

    num_branches = max(
        (len([k for k in r['epochs'][-1] if k.startswith('aux/branch')])
         for r in results.values()), default=0)
    header = ['method', 'top-1', 'top-5', 'wall time (min)', 's/iter'] + [
        f'branch {s} top-1' for s in range(1, num_branches + 1)
    ]
    print(f"\n{setting['model']}, {setting['fraction']:.0%} of every class, "
          f"{setting['epochs']} epochs, seed {setting['seed']}, full test "
          f"set, final epoch:\n")
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for method, result in results.items():
        last = result['epochs'][-1]
        row = [
            LABELS[method], f"{last['accuracy/top1']:.2f}",
            f"{last['accuracy/top5']:.2f}", f"{result['wall_s'] / 60:.1f}",
            f"{result['s_per_iter']:.3f}"
        ] + [
            f"{last[f'aux/branch{s}_top1']:.2f}"
            if f'aux/branch{s}_top1' in last else '-'
            for s in range(1, num_branches + 1)
        ]
        print('| ' + ' | '.join(row) + ' |')
    print(f'\nPlot: {osp.relpath(plot_path)}')


if __name__ == '__main__':
    main()
