"""Memory and time of the past-prediction store in each storage form.

For CIFAR-100 and ImageNet-1k sizes (four branches, four rotations) it
builds real stores, reads their tensors' bytes per sample, and scales them
to the dataset (every tensor has one row per sample, so the total is exactly
linear). It then times what the store adds to a training step (lookup of a
batch plus the update after it) and, for CIFAR-100, the ratio to a real
LSSKD training step of --config, the two measured alternately in one run
(medians of --repeats). The figures go to ``--out`` (a JSON file);
``--update-docs`` writes docs/benchmarks.md's table from the committed
record without measuring. Time it with nothing else on the machine.

Example::

    python tools/benchmarks/past_prediction_store.py \\
        --config configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py \\
        --out docs/results/store/past_prediction_store.json
    python tools/benchmarks/past_prediction_store.py --update-docs
"""
import argparse
import datetime
import json
import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlsskd  # noqa: F401
from mmlsskd.engine import PastPredictionStore

# Beside this script.
from cifar100_study_methods import ROOT
from cifar100_study_report import write_block
from device_info import device_name
from interleaved_timing import interleaved_medians

DATASETS = {
    # name: (training samples, classes, batch per step)
    'CIFAR-100': (50_000, 100, 64),
    'ImageNet-1k': (1_281_167, 1000, 32),
}
MODES = {
    'float32': dict(),
    'float16': dict(dtype='float16'),
    'float16 top-32': dict(dtype='float16', topk=32),
    'float16 top-32 unrotated': dict(
        dtype='float16', topk=32, branch_views='unrotated'),
}
# The committed record docs/benchmarks.md shows, and its block's markers.
RECORD = ROOT / 'docs/results/store/past_prediction_store.json'
PAGE = ROOT / 'docs/benchmarks.md'
MARKERS = ('<!-- store-benchmark: begin -->', '<!-- store-benchmark: end -->')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config', default='configs/lsskd/lsskd_resnet20_1xb64-240e_'
        'cifar100.py', help='LSSKD config whose training step is timed')
    parser.add_argument('--branches', type=int, default=4)
    parser.add_argument('--views', type=int, default=4)
    parser.add_argument('--sample-rows', type=int, default=4096,
                        help='rows of the stores actually built')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--out', help='write the figures to this JSON file')
    parser.add_argument(
        '--update-docs', action='store_true',
        help=f'write docs/benchmarks.md\'s table from '
        f'{RECORD.relative_to(ROOT)}; measure nothing')
    return parser.parse_args()


def store_step(store: PastPredictionStore, batch: int, classes: int,
               views: int, branches: int):
    """One step's store work: look a batch up, write it back."""
    indices = torch.randperm(store.num_samples)[:batch]
    final = torch.softmax(torch.randn(batch, classes), 1)
    sads = torch.softmax(
        torch.randn(branches, batch, views, classes * views), 3)

    def run():
        store.lookup(indices)
        store.update(indices, final, sads, epoch=0)

    return run


def training_step(config: str, batch: int):
    """One real LSSKD training step (forward, backward, SGD)."""
    cfg = Config.fromfile(config)
    init_default_scope('mmpretrain')
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    num_classes = model.num_classes
    model.attach_past_predictions(
        PastPredictionStore(batch, num_classes, model.num_views,
                            model.num_branches))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    inputs = torch.randn(batch, 3, 32, 32)
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i % num_classes)
        for i in range(batch)
    ]

    def run():
        losses = model.loss(inputs, samples)
        optimizer.zero_grad()
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        optimizer.step()
        model.pop_step_predictions()

    return run


def measure(args: argparse.Namespace) -> dict:
    """Every store form's bytes and step time per dataset, and the share of
    a real LSSKD training step the store's work takes."""
    datasets, step_runs = {}, {}
    for dataset, (samples, classes, batch) in DATASETS.items():
        stores = {
            mode: PastPredictionStore(args.sample_rows, classes, args.views,
                                      args.branches, **options)
            for mode, options in MODES.items()
        }
        runs = {
            mode: store_step(store, batch, classes, args.views,
                             args.branches)
            for mode, store in stores.items()
        }
        if dataset == 'CIFAR-100':
            runs['training step'] = training_step(args.config, batch)
        medians = interleaved_medians(runs, args.repeats)
        datasets[dataset] = {
            mode: dict(bytes_per_sample=store.nbytes / store.num_samples,
                       total_gib=store.nbytes / store.num_samples * samples /
                       2**30,
                       store_ms=medians[mode] * 1e3)
            for mode, store in stores.items()
        }
        if dataset == 'CIFAR-100':
            step_runs = medians
    step = step_runs.pop('training step')
    return dict(datasets=datasets, step_ms=step * 1e3,
                store_share={mode: 100 * seconds / step
                             for mode, seconds in step_runs.items()})


def report(record: dict) -> list:
    """Markdown lines of a record: bytes, size and time of every store
    form, and what each adds to an LSSKD training step."""
    lines = [
        f'{record["branches"]} branches, {record["views"]} views; bytes '
        f'measured on stores of {record["sample_rows"]} samples, scaled to '
        f'the dataset; times on {record["device"]}, {record["date"]}, '
        f'medians of {record["repeats"]} interleaved repeats:', '',
        '```bash', record['command'], '```', '',
        '| dataset | store | bytes / sample | total / rank (GiB) | store ms '
        '/ step |', '|---|---|---|---|---|'
    ]
    for dataset, modes in record['datasets'].items():
        for mode, m in modes.items():
            lines.append(f'| {dataset} | {mode} | {m["bytes_per_sample"]:.0f}'
                         f' | {m["total_gib"]:.2f} | {m["store_ms"]:.2f} |')
    lines += ['', f'An LSSKD training step (`{record["config"]}`, batch '
              f'{DATASETS["CIFAR-100"][2]}) took {record["step_ms"]:.0f} ms; '
              f'the store adds to it:', '']
    lines += [f'- {mode}: {share:.2f} %'
              for mode, share in record['store_share'].items()]
    return lines


def main() -> None:
    args = parse_args()
    if args.update_docs:
        write_block(PAGE, *MARKERS, report(json.loads(RECORD.read_text())))
        return
    record = dict(
        config=args.config, branches=args.branches, views=args.views,
        sample_rows=args.sample_rows, repeats=args.repeats,
        device=device_name(), torch=torch.__version__,
        date=datetime.date.today().isoformat(),
        command=' '.join(['python tools/benchmarks/past_prediction_store.py',
                          *sys.argv[1:]]),
        **measure(args))
    print('\n'.join(report(record)))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(record, indent=1) + '\n')


if __name__ == '__main__':
    main()
