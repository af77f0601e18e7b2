"""What a shipped LSSKD config holds and writes: its past-prediction store
and its checkpoints, for every store setting, and the disk its kept
checkpoints take.

For each config it builds the model (the LSSKD wrapper, branches
included), counts the weights and the optimizer state a checkpoint holds
(as ``PastPredictionHook`` estimates them before training), and sizes the
store of the config's training set at each store setting with
``PastPredictionStore.estimate_nbytes`` (the bytes of the store's own
tensors; a test checks it against built stores). The training set's size
is the dataset's published one (the images are not read), times a
``ClassStratifiedSubset``'s fraction. The kept checkpoints are the
config's ``max_keep_ckpts``, one more while a write replaces the oldest,
and the best one where ``save_best`` keeps it.

Example::

    python tools/analysis_tools/checkpoint_sizes.py --update-docs
"""
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ('configs/lsskd/lsskd_resnet20_1xb64-5e_cifar100-10pct.py',
           'configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py',
           'configs/lsskd/resnet18_cifar100.py',
           'configs/lsskd/lsskd_resnet18_1xb64-240e_tiny-imagenet.py',
           'configs/lsskd/lsskd_resnet18_8xb32_in1k.py')
# Training images of each dataset, as published.
TRAINING_IMAGES = {'CIFAR100': 50_000, 'LocalCIFAR100': 50_000,
                   'CustomDataset': 100_000, 'ImageNet': 1_281_167}
DATASET_NAMES = {'CIFAR100': 'CIFAR-100', 'LocalCIFAR100': 'CIFAR-100',
                 'CustomDataset': 'Tiny-ImageNet', 'ImageNet': 'ImageNet-1k'}
STORE_SETTINGS = (dict(dtype='float32'), dict(dtype='float16'),
                  dict(dtype='float16', topk=32),
                  dict(dtype='float16', topk=32, branch_views='unrotated'))
PAGE = ROOT / 'docs/cost.md'
MARKERS = ('<!-- checkpoint-sizes: begin -->',
           '<!-- checkpoint-sizes: end -->')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=list(CONFIGS))
    parser.add_argument(
        '--update-docs', action='store_true',
        help='write the table into docs/cost.md between its markers')
    return parser.parse_args(argv)


def training_set(cfg) -> tuple:
    """``(dataset name, training images)`` of a config, through its
    wrappers (a subset's fraction applied)."""
    dataset, fraction = cfg.train_dataloader.dataset, 1.0
    while 'dataset' in dataset:
        fraction *= dataset.get('fraction', 1.0)
        dataset = dataset.dataset
    name = str(dataset.type).split('.')[-1]
    return DATASET_NAMES[name], round(TRAINING_IMAGES[name] * fraction)


def store_words(setting: dict) -> str:
    words = setting['dtype']
    if 'topk' in setting:
        words += f' top-{setting["topk"]}'
    if setting.get('branch_views') == 'unrotated':
        words += ' unrotated'
    return words


def config_rows(path: str) -> list:
    """Markdown rows of one config: one per store setting."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmlsskd  # noqa: F401  (registers the model's types)
    from mmlsskd.engine import PastPredictionStore
    from mmlsskd.engine.checkpoint_space import (checkpoint_bytes,
                                                 checkpoints_at_once)
    cfg = Config.fromfile(str(ROOT / path))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    dataset, images = training_set(cfg)
    hooks = {h['type']: h for h in cfg.get('custom_hooks', [])}
    own = dict(dtype='float32')
    own.update(hooks['PastPredictionHook'].get('store', {}))
    own.pop('device', None)
    checkpoint = cfg.default_hooks.checkpoint
    keep = checkpoint.get('max_keep_ckpts', -1)
    epochs = cfg.train_cfg.max_epochs
    kept = checkpoints_at_once(keep, epochs) + int(
        bool(checkpoint.get('save_best')))
    rows = []
    for setting in STORE_SETTINGS:
        store = PastPredictionStore.estimate_nbytes(
            images, model.num_classes, model.num_views, model.num_branches,
            **setting)
        size = checkpoint_bytes(model, optim_wrapper, store)
        mark = ' (the config\'s)' if setting == own else ''
        rows.append(
            f'| `{Path(path).name}` | {dataset}, {images:,} images, '
            f'{model.num_branches} branches | {store_words(setting)}{mark} '
            f'| {store / 1e9:.2f} | {size / 1e9:.2f} | {kept} | '
            f'{kept * size / 1e9:.1f} |')
    return rows


def table(configs) -> list:
    lines = [
        '| config | training set | store setting | store (GB, per rank) | '
        'checkpoint (GB) | checkpoints on disk at once | disk (GB) |',
        '|---|---|---|---|---|---|---|'
    ]
    for path in configs:
        lines += config_rows(path)
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    lines = table(args.configs)
    print('\n'.join(lines))
    if args.update_docs:
        text = PAGE.read_text()
        begin, end = MARKERS
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        PAGE.write_text(head + '\n'.join([begin, *lines, end]) + tail)


if __name__ == '__main__':
    main()
