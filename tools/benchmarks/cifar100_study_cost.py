"""What each method of the CIFAR-100 study costs to train, measured side by
side.

Every method trains from the study's own config (the shipped config shrunk
to the study's regime: the stratified subset, batch 64, the study's
precision, channels-last where the method has it), and its whole training
steps (the Runner's ``run_iter``) are timed interleaved with every other
method's, medians of ``--repeats``: the seconds per training epoch are
that median times the epoch's steps (evaluation is left out; it costs
the same for every method but LSSKD's branch evaluation). Beside them, per
method:

- the training FLOPs per image: the convolutions and matrix products one
  training step runs, forward and backward, counted by torch's
  ``FlopCounterMode``, divided by the batch;
- the peak memory of a step (tensors it allocates beyond those alive
  before it) and the past-prediction store's bytes;

each also relative to cross-entropy. The ratios are the result; the
seconds are this machine's. The figures go to a JSON file
(``--out``, by default under docs/results/cost/, named after the regime),
from which the study's report builds the docs' cost table and the
compute-matched comparison.

Run it with nothing else on the machine: interleaving puts every method
under the same load, but other processes still change the ratios of a
small network's steps.

Example::

    python tools/benchmarks/cifar100_study_cost.py \\
        ../shared/data/cifar-100-python --fraction 0.2
"""
import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mmlsskd.utils import reuse_freed_heap_memory
# Beside this script.
import cifar100_cpu_study as study
from cifar100_study_compute import cost_path, cost_table
from cifar100_study_methods import PRECISIONS
from device_info import device_name
from interleaved_timing import interleaved_medians
from training_efficiency import (build_runner, ready_to_step,
                                 step_peak_memory, training_step,
                                 without_evaluation)

METHODS = ('ce', 'lbs', 'pskd', 'lsskd', 'lsskd-no-past')
# The study trains mmpretrain's classifier contiguous (it has no
# channels-last option) and PS-KD and LSSKD channels-last; this row tells
# the layout's share of their ratios to cross-entropy.
PLAIN_CHANNELS_LAST = 'ce, channels-last'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'data', help='the cifar-100-python folder (train, test, meta)')
    parser.add_argument('--model', default='resnet20')
    parser.add_argument('--fraction', type=float, default=0.2)
    parser.add_argument(
        '--precision', choices=PRECISIONS, default='bf16',
        help='as the study trains (its default bf16 needs a CPU or GPU '
        'that runs bfloat16 natively)')
    parser.add_argument(
        '--methods', nargs='+', default=list(METHODS),
        choices=list(study.METHODS),
        help='the first is the reference of every ratio (default ce)')
    parser.add_argument('--repeats', type=int, default=60)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument(
        '--out', default=None,
        help='the JSON file of the figures (default: docs/results/cost/'
        'cost_<model>_<fraction>frac_<precision>.json, which '
        'cifar100_study_compute.py reads)')
    args = parser.parse_args(argv)
    # The study's own settings for building its configs: its checks (the
    # precision this machine runs natively) apply here too.
    args.study = study.parse_args([
        args.data, '--model', args.model, '--fraction', str(args.fraction),
        '--precision', args.precision, '--channels-last'
    ])
    return args


def method_runner(name: str, args: argparse.Namespace, work_dir: str):
    """A Runner of the study's config of method ``name``, set up to step,
    with its evaluation left out."""
    method = 'ce' if name == PLAIN_CHANNELS_LAST else name
    cfg = without_evaluation(
        study.study_config(method, seed=0, args=args.study), work_dir)
    # The study's config sets PS-KD's and LSSKD's layout itself.
    return ready_to_step(
        build_runner(cfg, channels_last=name == PLAIN_CHANNELS_LAST))


def training_flops(runner, batch: dict) -> int:
    """FLOPs of one whole training step on ``batch``, forward and
    backward, as the optimizer wrapper runs them."""
    model = runner.model
    counter = FlopCounterMode(display=False)
    with counter:
        model.train_step(batch, runner.optim_wrapper)
    return counter.get_total_flops()


def measure(args: argparse.Namespace) -> dict:
    """Every method's figures, timed side by side."""
    steps, memory, flops, store, runs = {}, {}, {}, {}, {}
    names = [*args.methods, PLAIN_CHANNELS_LAST]
    with tempfile.TemporaryDirectory() as work_dir:
        for i, method in enumerate(names):
            runner = method_runner(method, args, f'{work_dir}/{i}')
            batch = next(iter(runner.train_dataloader))
            runs[method] = training_step(runner, batch)
            steps[method] = len(runner.train_dataloader)
            batch_size = len(batch['data_samples'])
            flops[method] = training_flops(runner, batch) / batch_size
            memory[method] = step_peak_memory(runs[method])
            past = getattr(runner.model, '_past_predictions', None)
            store[method] = past.nbytes if past is not None else 0
        seconds = interleaved_medians(runs, args.repeats, args.warmup)
    return {
        method: dict(
            s_per_step=seconds[method],
            steps_per_epoch=steps[method],
            s_per_epoch=seconds[method] * steps[method],
            train_gflops_per_image=flops[method] / 1e9,
            peak_step_mb=memory[method] / 2**20,
            store_mb=store[method] / 2**20)
        for method in names
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    heap_reuse = reuse_freed_heap_memory()  # as tools/train.py trains
    figures = measure(args)
    device = device_name()
    record = dict(
        model=args.model, fraction=args.fraction, precision=args.precision,
        reference=args.methods[0],
        device=device, heap_reuse=heap_reuse, repeats=args.repeats,
        torch=torch.__version__, date=datetime.date.today().isoformat(),
        command='python tools/benchmarks/cifar100_study_cost.py ' +
        ' '.join(sys.argv[1:] if argv is None else map(str, argv)),
        methods=figures)
    out = Path(args.out) if args.out else cost_path(
        argparse.Namespace(cost=None, model=args.model,
                           fraction=args.fraction, precision=args.precision))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + '\n')
    print('\n'.join(cost_table(record)))
    print(f'\nWritten to {out}; `python tools/benchmarks/'
          f'cifar100_study_compute.py --update-docs` puts it in the docs.')


if __name__ == '__main__':
    main()
