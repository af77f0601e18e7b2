"""Count the operations one training step dispatches: what a GPU pays for.

On a GPU a ResNet-20 step is host-bound: every ATen operation costs a
kernel launch and some microseconds of Python and dispatcher work, whatever
its size. So the number of operations a step dispatches predicts its GPU
time where the arithmetic is small, and it can be counted on the CPU. This
script counts them, with a ``TorchDispatchMode`` around one training step
after a warm-up step, for:

- ``plain``, ``PS-KD`` and ``LSSKD``: the Runner's ``run_iter`` on a real
  CIFAR-100 batch of the shipped configs (data preprocessor, forward,
  losses, backward, hooks, optimizer step), at two batch sizes;
- with ``--hsakd PATH`` (a checkout of the official HSSAKD code,
  winycg/HSAKD, read from there and never copied here), the official
  training steps counted the same way: its baseline step (``plain``) and
  its 4-view step with a joint-label classifier after every stage.

The optimizer's own operations are counted apart (torch's global optimizer
step hooks mark them): they depend on the foreach/fused choice, which both
codes can make alike. ``--collate pseudo_collate`` counts what a config
that keeps mmpretrain's default collate function pays.

The counts go to ``--out`` (a JSON file; the checkout's path is not
recorded); ``--update-docs`` writes docs/benchmarks.md's table from the
committed file without counting anything.

Example::

    python tools/benchmarks/op_count.py ../shared/data/cifar-100-python \\
        --hsakd ~/HSAKD --out docs/results/op_count/op_count_resnet20.json
    python tools/benchmarks/op_count.py --update-docs
"""
import argparse
import collections
import datetime
import json
import tempfile
from pathlib import Path

import torch
from torch.optim.optimizer import (register_optimizer_step_post_hook,
                                   register_optimizer_step_pre_hook)
from torch.utils._python_dispatch import TorchDispatchMode

import mmlsskd  # noqa: F401  (registers LSSKD's components)

# Beside this script.
from cifar100_students import add_student_arguments
from cifar100_study_methods import ROOT
from cifar100_study_report import write_block
from official_hsakd import command_line, official_steps
from training_efficiency import (build_runner, ready_to_step, step_config,
                                 training_step)

METHODS = {'plain': 'plain', 'PS-KD': 'pskd', 'LSSKD': 'lsskd'}
# The committed counts docs/benchmarks.md shows, and its block's markers.
RECORD = ROOT / 'docs/results/op_count/op_count_resnet20.json'
PAGE = ROOT / 'docs/benchmarks.md'
MARKERS = ('<!-- op-count: begin -->', '<!-- op-count: end -->')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_student_arguments(parser, data_required=False)
    parser.add_argument('--batch-sizes', type=int, nargs=2, default=[16, 64])
    parser.add_argument(
        '--collate', default=None,
        help="the training loader's collate_fn type (default: the config's)")
    parser.add_argument(
        '--hsakd', default=None,
        help='a checkout of the official HSSAKD code (winycg/HSAKD): count '
        'its plain and 4-view training steps the same way')
    parser.add_argument(
        '--by-op', action='store_true',
        help='also print every operation name and its count per step')
    parser.add_argument('--out', help='write the counts to this JSON file')
    parser.add_argument(
        '--update-docs', action='store_true',
        help=f'write docs/benchmarks.md\'s table from '
        f'{RECORD.relative_to(ROOT)}; count nothing')
    args = parser.parse_args()
    if args.data is None and not args.update_docs:
        parser.error('the data folder is needed to count (only '
                     '--update-docs goes without it).')
    return args


class OperationCounter(TorchDispatchMode):
    """Counts every ATen operation dispatched inside it, by name, with the
    optimizer's step apart."""

    def __init__(self) -> None:
        super().__init__()
        self.step = collections.Counter()
        self.optimizer = collections.Counter()
        self.in_optimizer = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        counts = self.optimizer if self.in_optimizer else self.step
        counts[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def count(step) -> OperationCounter:
    """Run ``step`` once to warm up (the optimizer's state appears), then
    once counted."""
    step()
    counter = OperationCounter()

    def enter(*args):
        counter.in_optimizer = True

    def leave(*args):
        counter.in_optimizer = False

    handles = [register_optimizer_step_pre_hook(enter),
               register_optimizer_step_post_hook(leave)]
    try:
        with counter:
            step()
    finally:
        for handle in handles:
            handle.remove()
    return counter


def our_step(name: str, batch_size: int, args: argparse.Namespace,
             work_dir: str):
    """The Runner's training step of the shipped ``name`` config."""
    args = argparse.Namespace(**vars(args), batch_size=batch_size)
    cfg = step_config(METHODS[name], args, work_dir)
    if args.collate:
        cfg.train_dataloader.collate_fn = dict(type=args.collate)
    runner = ready_to_step(build_runner(cfg))
    return training_step(runner, next(iter(runner.train_dataloader)))


def report(record: dict) -> list:
    """Markdown lines of a record: the counts per step and batch size, what
    grows with the batch, and ours over the official steps'."""
    sizes = record['batch_sizes']
    rows = record['rows']
    lines = [
        f'{record["model"]}, torch {record["torch"]}, {record["date"]}; '
        f'ATen operations per training step outside the optimizer\'s step '
        f'(the optimizer\'s own in brackets); {record["collate"]}:', '',
        '```bash', record['command'], '```', '',
        '| step | ' + ' | '.join(f'batch {b}' for b in sizes) + ' |',
        '|---|' + '---|' * len(sizes)
    ]
    for name, counts in rows.items():
        lines.append(f'| {name} | ' + ' | '.join(
            f'{counts[str(b)]["step"]} ({counts[str(b)]["optimizer"]})'
            for b in sizes) + ' |')
    growth = {name: counts[str(sizes[1])]['step'] -
              counts[str(sizes[0])]['step'] for name, counts in rows.items()}
    lines += ['', f'Operations that grow from batch {sizes[0]} to '
              f'{sizes[1]}: ' + ', '.join(
                  f'{name} {grown:+d}' for name, grown in growth.items())
              + '.', '']
    official = [counts[str(sizes[1])]['step']
                for name, counts in rows.items()
                if name.startswith('official')]
    if official:
        for ours, theirs in zip(('ours: plain', 'ours: LSSKD'), official):
            mine = rows[ours][str(sizes[1])]['step']
            lines.append(f'- {ours} / official, batch {sizes[1]}: {mine} / '
                         f'{theirs} = {mine / theirs:.2f}')
    return lines


def main() -> None:
    args = parse_args()
    if args.update_docs:
        write_block(PAGE, *MARKERS, report(json.loads(RECORD.read_text())))
        return
    rows = collections.defaultdict(dict)
    by_op = {}
    with tempfile.TemporaryDirectory() as work_dir:
        for batch_size in args.batch_sizes:
            for name in METHODS:
                counter = count(our_step(name, batch_size, args,
                                         f'{work_dir}/{name}{batch_size}'))
                rows[f'ours: {name}'][batch_size] = counter
                by_op[f'ours: {name}, batch {batch_size}'] = counter
            if args.hsakd:
                for name, step in official_steps(
                        args.hsakd, batch_size, args.model).items():
                    rows[name][batch_size] = count(step)

    record = dict(
        model=args.model, torch=torch.__version__,
        date=datetime.date.today().isoformat(),
        command=command_line('tools/benchmarks/op_count.py'),
        collate=(f'collate_fn {args.collate}' if args.collate else
                 "the config's collate_fn"),
        batch_sizes=args.batch_sizes,
        rows={name: {str(b): dict(step=sum(c.step.values()),
                                  optimizer=sum(c.optimizer.values()))
                     for b, c in counts.items()}
              for name, counts in rows.items()})
    print('\n' + '\n'.join(report(record)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + '\n')
    if args.by_op:
        for name, counter in by_op.items():
            print(f'\n{name}: ' + ', '.join(
                f'{op} {n}' for op, n in counter.step.most_common()))


if __name__ == '__main__':
    main()
