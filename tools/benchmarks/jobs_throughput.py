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
machine, and their ratio; ``--out`` writes them to a JSON file, and
``--update-docs`` writes docs/benchmarks.md's table from the committed
records (one per method) without measuring.

Example::

    python tools/benchmarks/jobs_throughput.py \\
        ../shared/data/cifar-100-python --method lsskd --jobs 2 \\
        --channels-last --bf16 --out docs/results/jobs_throughput/lsskd.json
    python tools/benchmarks/jobs_throughput.py --update-docs
"""
import argparse
import datetime
import json
import os
import queue
import statistics
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import torch

from mmlsskd.utils import reuse_freed_heap_memory
# Beside this script.
from cifar100_students import add_student_arguments
from cifar100_study_methods import ROOT
from cifar100_study_report import write_block
from device_info import device_name
from training_efficiency import CONFIGS, set_up_runner, training_step

# The committed records docs/benchmarks.md shows, and its block's markers.
RECORDS = ROOT / 'docs/results/jobs_throughput'
PAGE = ROOT / 'docs/benchmarks.md'
MARKERS = ('<!-- jobs-throughput: begin -->', '<!-- jobs-throughput: end -->')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_student_arguments(parser, data_required=False)
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
    parser.add_argument('--out', help='write the figures to this JSON file')
    parser.add_argument(
        '--update-docs', action='store_true',
        help='write docs/benchmarks.md\'s table from the records in '
        f'{RECORDS.relative_to(ROOT)}/; measure nothing')
    args = parser.parse_args()
    if args.update_docs:
        return args
    if args.data is None:
        parser.error('the data folder is needed to measure (only '
                     '--update-docs goes without it).')
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


def docs_table(records: list) -> list:
    """Markdown lines of docs/benchmarks.md: one row per record."""
    lines = []
    for record in records:
        lines += [f'- `{record["command"]}`: {record["device"]}, '
                  f'{record["date"]}']
    lines += [
        '', '| method | layout | one run, all threads: s/step | runs at '
        'once, a share of the threads each: s/step of each | steps of the '
        'machine, runs at once / one run |', '|---|---|---|---|---|'
    ]
    for record in records:
        one, many = (record['settings'][str(j)]
                     for j in (1, record['jobs']))
        lines.append(
            f'| {record["model"]} {record["method"]} | {record["layout"]} '
            f'| {one["s_per_step"]:.3f} ({record["threads"]} threads) | '
            f'{many["s_per_step"]:.3f} ({record["jobs"]} runs, '
            f'{many["threads_each"]} each) | '
            f'{many["steps_per_s"] / one["steps_per_s"]:.2f} |')
    return lines


def main() -> None:
    args = parse_args()
    if args.update_docs:
        records = [json.loads(p.read_text())
                   for p in sorted(RECORDS.glob('*.json'))]
        write_block(PAGE, *MARKERS, docs_table(records))
        return
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
    if args.out:
        record = dict(
            model=args.model, method=args.method, layout=layout,
            batch_size=args.batch_size, threads=args.threads, jobs=args.jobs,
            steps=args.steps, warmup=args.warmup, repeats=args.repeats,
            device=device_name(threads=False),
            torch=torch.__version__, date=datetime.date.today().isoformat(),
            command=' '.join(['python tools/benchmarks/jobs_throughput.py',
                              *sys.argv[1:]]),
            settings={str(jobs): dict(
                threads_each=args.threads // jobs,
                s_per_step=statistics.median(step_s[jobs]),
                steps_per_s=throughput[jobs]) for jobs in settings})
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + '\n')


if __name__ == '__main__':
    main()
