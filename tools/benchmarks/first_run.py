"""Time a first run as a user makes it, and record what it learned.

Trains ``CONFIG`` with ``tools/train.py`` exactly as get_started.md shows
it (a subprocess, its own work directory), and writes the wall time, the
last evaluation's top-1 and top-5 and the machine to
``docs/results/first_run/{config}.json``. ``--update-docs`` writes the
sentence get_started.md states about the run from that file, without
training.

Run it with nothing else on the machine: the minutes are the result.

Example (a local copy of CIFAR-100, read as get_started.md shows)::

    DATA=$(realpath ../shared/data)
    python tools/benchmarks/first_run.py --train-args --cfg-options \
        train_dataloader.dataset.dataset.type=LocalCIFAR100 \
        train_dataloader.dataset.dataset.data_root=$DATA \
        val_dataloader.dataset.type=LocalCIFAR100 \
        val_dataloader.dataset.data_root=$DATA \
        test_dataloader.dataset.type=LocalCIFAR100 \
        test_dataloader.dataset.data_root=$DATA
    python tools/benchmarks/first_run.py --update-docs
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

# Beside this script.
from cifar100_cpu_study import read_run
from device_info import device_name
from cifar100_study_report import write_block

ROOT = Path(__file__).resolve().parents[2]
QUICK_CONFIG = 'configs/lsskd/lsskd_resnet20_1xb64-5e_cifar100-10pct.py'
RESULTS = ROOT / 'docs/results/first_run'
PAGE = ROOT / 'docs/get_started.md'
MARKERS = ('<!-- first-run: begin -->', '<!-- first-run: end -->')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=QUICK_CONFIG)
    parser.add_argument(
        '--update-docs', action='store_true',
        help='write the recorded run into get_started.md; train nothing')
    parser.add_argument('--results-dir', type=Path, default=RESULTS)
    parser.add_argument(
        '--train-args', nargs=argparse.REMAINDER, default=[],
        help='the rest is passed to tools/train.py (e.g. --cfg-options)')
    return parser.parse_args(argv)


def result_path(config: str, results: Path = RESULTS) -> Path:
    return results / f'{Path(config).stem}.json'


def train(args: argparse.Namespace) -> dict:
    """Train the config as a user does; its record."""
    with tempfile.TemporaryDirectory() as work_dir:
        command = [sys.executable, 'tools/train.py', args.config,
                   '--work-dir', work_dir, *args.train_args]
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
        wall_s = time.perf_counter() - start
        run = read_run(Path(work_dir))
    last = run['curve'][-1]
    device = device_name()
    return dict(
        config=args.config,
        command=' '.join(['python tools/train.py', args.config,
                          *args.train_args]),
        epochs=last['epoch'], wall_s=round(wall_s, 1),
        top1=last['accuracy/top1'], top5=last['accuracy/top5'],
        device=device, torch=torch.__version__,
        date=datetime.date.today().isoformat())


def sentence(record: dict) -> list:
    """What get_started.md says of the run, from its record."""
    return [
        f'On {record["device"]}, nothing else running, on '
        f'{record["date"]}, it took {record["wall_s"] / 60:.1f} minutes '
        f'with the data at hand and ended at {record["top1"]:.2f} % test '
        f'top-1 after {record["epochs"]} epochs (chance is 1 %; '
        f'`{result_path(record["config"]).relative_to(ROOT)}`, written by '
        f'`python tools/benchmarks/first_run.py`).'
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    path = result_path(args.config, args.results_dir)
    if not args.update_docs:
        record = train(args)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + '\n')
        print(f'Written to {path}.')
    record = json.loads(path.read_text())
    print(sentence(record)[0])
    if args.update_docs:
        write_block(PAGE, *MARKERS, sentence(record))


if __name__ == '__main__':
    main()
