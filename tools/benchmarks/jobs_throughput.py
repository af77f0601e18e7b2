"""How much training a CPU does: one run on all its threads, against
several runs at once, each on its share (``cifar100_cpu_study.py --jobs``).

A small network's step may not speed up with more threads: its convolutions
are too small to split well. Then two runs side by side, a thread each, do
up to twice the work of one run on two. This measures it on the machine at
hand with real mmengine Runners of a shipped config on real CIFAR-100
batches, each in a fresh process: ``--steps`` timed training steps after
``--warmup``, the runs of a round started together (a barrier), and
``--repeats`` rounds of the two settings interleaved. It prints each
setting's median step time per run and the steps per second of the whole
machine, and their ratio.

Example::

    python tools/benchmarks/jobs_throughput.py \\
        ../shared/data/cifar-100-python --method lsskd --jobs 2 \\
        --channels-last --bf16
"""
import argparse
import os
import queue
import statistics
import tempfile
import time
from multiprocessing import get_context

import torch

from mmlsskd.utils import reuse_freed_heap_memory
from cifar100_students import add_student_arguments  # beside this script
from training_efficiency import (CONFIGS, set_up_runner,  # beside this script
                                 training_step)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_student_arguments(parser)
    parser.add_argument('--method', choices=list(CONFIGS), default='lsskd')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument(
        '--jobs', type=int, default=2,
        help='runs at once in the second setting, each on threads / jobs')
    parser.add_argument(
        '--threads', type=int, default=None,
        help='threads of the whole machine (default: what torch uses, '
        'OMP_NUM_THREADS or the cores)')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--bf16', action='store_true',
                        help='bfloat16 mixed precision (tools/train.py --amp)')
    args = parser.parse_args()
    args.threads = args.threads or torch.get_num_threads()
    if not 1 < args.jobs <= args.threads:
        parser.error(f'--jobs must be between 2 and the threads '
                     f'({args.threads}), got {args.jobs}.')
    return args


def timed_steps(args: argparse.Namespace, threads: int, barrier,
                results) -> None:
    """Build a run on ``threads`` threads, wait for the others, and put the
    times of its ``args.steps`` training steps on ``results``."""
    torch.set_num_threads(threads)
    reuse_freed_heap_memory()  # as tools/train.py does on a CPU
    with tempfile.TemporaryDirectory() as work_dir:
        runner = set_up_runner(args.method, args, work_dir,
                               args.channels_last, args.bf16)
        step = training_step(runner, next(iter(runner.train_dataloader)))
        for _ in range(args.warmup):
            step()
        barrier.wait()
        seconds = []
        for _ in range(args.steps):
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
    results.put(seconds)


def run_round(args: argparse.Namespace, jobs: int) -> list:
    """The step times of ``jobs`` runs trained at once, one list per run."""
    context = get_context('spawn')
    barrier, results = context.Barrier(jobs), context.Queue()
    workers = [
        context.Process(target=timed_steps,
                        args=(args, args.threads // jobs, barrier, results))
        for _ in range(jobs)
    ]
    # As the study starts its training processes: the share in the
    # environment, read when OpenMP starts, and in torch.
    saved = os.environ.get('OMP_NUM_THREADS')
    os.environ['OMP_NUM_THREADS'] = str(args.threads // jobs)
    try:
        for worker in workers:
            worker.start()
    finally:
        if saved is None:
            del os.environ['OMP_NUM_THREADS']
        else:
            os.environ['OMP_NUM_THREADS'] = saved
    times = []
    while len(times) < jobs:
        try:
            times.append(results.get(timeout=5))
        except queue.Empty:
            # A run that died never reaches the barrier: stop the others.
            if any(worker.exitcode for worker in workers):
                for worker in workers:
                    worker.terminate()
                raise SystemExit('a timed run failed: its error is above')
    for worker in workers:
        worker.join()
    return times


def main() -> None:
    args = parse_args()
    settings = (1, args.jobs)
    step_s = {jobs: [] for jobs in settings}
    for _ in range(args.repeats):
        for jobs in settings:
            # Each run's median step; one figure per run and round.
            step_s[jobs] += [statistics.median(t)
                             for t in run_round(args, jobs)]
    layout = ', '.join(['channels-last'] * args.channels_last +
                       ['bf16'] * args.bf16) or 'contiguous, float32'
    print(f'\n{args.model} {args.method}, batch {args.batch_size}, {layout}; '
          f'{args.threads} threads in all; medians of {args.steps} steps '
          f'after {args.warmup}, {args.repeats} interleaved rounds\n')
    print('| runs at once | threads each | s/step of each run | '
          'steps/s of the machine |')
    print('|---|---|---|---|')
    throughput = {}
    for jobs in settings:
        seconds = statistics.median(step_s[jobs])
        throughput[jobs] = jobs / seconds
        print(f'| {jobs} | {args.threads // jobs} | {seconds:.3f} | '
              f'{throughput[jobs]:.3f} |')
    print(f'\n{args.jobs} runs at once / one run: '
          f'{throughput[args.jobs] / throughput[1]:.2f} times the steps')


if __name__ == '__main__':
    main()
