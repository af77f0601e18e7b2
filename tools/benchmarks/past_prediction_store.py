"""Memory and time of the past-prediction store in each storage form.

For CIFAR-100 and ImageNet-1k sizes (four branches, four rotations) it
builds real stores, reads their tensors' bytes per sample, and scales them
to the dataset (every tensor has one row per sample, so the total is exactly
linear). It then times what the store adds to a training step (lookup of a
batch plus the update after it) and, for CIFAR-100, the ratio to a real
LSSKD training step of --config, the two measured alternately in one run
(medians of --repeats).

Example::

    python tools/benchmarks/past_prediction_store.py \\
        --config configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py
"""
import argparse

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlsskd  # noqa: F401
from mmlsskd.engine import PastPredictionStore

from interleaved_timing import interleaved_medians  # beside this script

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


def main() -> None:
    args = parse_args()
    print(f'{args.branches} branches, {args.views} views; bytes measured on '
          f'stores of {args.sample_rows} samples, scaled to the dataset.\n')
    print(f'{"dataset":12} {"mode":26} {"bytes/sample":>13} '
          f'{"total/rank":>11} {"store ms/step":>14}')
    step_runs = {}
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
        for mode, store in stores.items():
            per_sample = store.nbytes / store.num_samples
            total = per_sample * samples
            print(f'{dataset:12} {mode:26} {per_sample:13.0f} '
                  f'{total / 2**30:9.2f} GB {medians[mode] * 1e3:14.2f}')
        if dataset == 'CIFAR-100':
            step_runs = medians
    step = step_runs.pop('training step')
    print(f'\nLSSKD training step ({args.config}, batch '
          f'{DATASETS["CIFAR-100"][2]}, this CPU): {step * 1e3:.0f} ms; '
          f'the store adds:')
    for mode, seconds in step_runs.items():
        print(f'  {mode:26} {100 * seconds / step:6.2f} %')


if __name__ == '__main__':
    main()
