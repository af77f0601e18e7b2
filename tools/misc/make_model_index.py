"""Write ``model-index.yml`` and one ``metafile.yml`` per config folder, in
the layout of mmpretrain's model index, from the shipped configs.

mim (``mim search mmlsskd``), mmengine's ``mmlsskd::`` config inheritance
and mmpretrain's ``list_models``/``get_model`` read these files. Every
config that trains a model is listed, named after its file. A config of
the CIFAR-100 study's regime (``STUDY_CONFIGS``) carries ``Results``: the
mean test top-1 and top-5 at the last epoch of its committed runs
(``docs/results/cifar100_study/``), once three seeds have finished, as the
study's verdicts need. No other config has been trained on its own
schedule, and no entry has ``Weights``: none are published.

Example::

    python tools/misc/make_model_index.py          # write the files
    python tools/misc/make_model_index.py --check  # fail if out of date
"""
import argparse
import re
import statistics
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
from cifar100_study_methods import (STUDY_CONFIGS,  # noqa: E402
                                    load_results)

RESULT_SEEDS = 3
# folder: (collection, paper title, paper URL, what it trains)
COLLECTIONS = {
    'lsskd': ('LSSKD', 'A Layered Self-Supervised Knowledge Distillation '
              'Framework for Efficient Multimodal Learning on the Edge',
              'https://arxiv.org/abs/2506.07055'),
    'few_shot': ('LSSKD few-shot', 'A Layered Self-Supervised Knowledge '
                 'Distillation Framework for Efficient Multimodal Learning '
                 'on the Edge', 'https://arxiv.org/abs/2506.07055'),
    'pskd': ('PS-KD', 'Self-Knowledge Distillation with Progressive '
             'Refinement of Targets', 'https://arxiv.org/abs/2006.12000'),
    'baselines': ('Baselines', 'Deep Residual Learning for Image '
                  'Recognition', 'https://arxiv.org/abs/1512.03385'),
}
DATASETS = {'CIFAR100': 'CIFAR-100', 'LocalCIFAR100': 'CIFAR-100',
            'ImageNet': 'ImageNet-1k', 'CustomDataset': 'Tiny-ImageNet'}


def training_data(cfg) -> str:
    dataset = cfg.train_dataloader.dataset
    while 'dataset' in dataset:  # subset and other wrappers
        dataset = dataset.dataset
    name = str(dataset.type).split('.')[-1]
    return DATASETS.get(name, name)


def augmentations(cfg) -> list:
    """Cutout in the training pipeline and the batch mixes (the model's or
    its wrapped classifier's ``train_cfg.augments``), as mmpretrain's
    metafiles list them."""
    dataset = cfg.train_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    names = [t['type'] for t in dataset.get('pipeline', [])
             if t['type'] == 'Cutout']
    model = cfg.model.get('architecture', cfg.model)
    augments = (model.get('train_cfg') or {}).get('augments', [])
    if isinstance(augments, dict):
        augments = [augments]
    return names + [a['type'] for a in augments]


def total_batch_size(path: Path, cfg) -> int:
    """The batch of one step over every GPU, as mmpretrain's metafiles
    record it: the config name's ``{gpus}xb{batch}`` (``8xb32``: 256)."""
    match = re.search(r'_(\d+)xb(\d+)', path.stem)
    gpus = int(match.group(1)) if match else 1
    return gpus * cfg.train_dataloader.batch_size


def measured_results(path: Path, dataset: str) -> list:
    """mmpretrain's ``Results`` of a study config: the mean last-epoch
    test top-1 and top-5 of its runs, none before three seeds."""
    runs = [run for row, config in STUDY_CONFIGS.items()
            if ROOT / config == path.resolve()
            for run in load_results(row.regime_args()).get(row.method, [])]
    if len(runs) < RESULT_SEEDS:
        return []
    return [{
        'Task': 'Image Classification',
        'Dataset': dataset,
        'Metrics': {
            f'Top {k} Accuracy': round(
                statistics.mean(r['last'][f'top{k}'] for r in runs), 2)
            for k in (1, 5)
        },
    }]


def model_entry(path: Path) -> dict:
    """The metafile entry of one config."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(path))
    techniques = ['SGD with Momentum', 'Weight Decay']
    if str(cfg.model.type).split('.')[-1] in ('LSSKD', 'PSKD'):
        techniques.append('Self-Knowledge Distillation')
    if cfg.optim_wrapper.get('type') in ('AmpOptimWrapper',
                                         'BF16AmpOptimWrapper'):
        techniques.append('Mixed Precision Training')
    techniques += augmentations(cfg)
    entry = {
        'Name': path.stem,
        'In Collection': COLLECTIONS[path.parent.name][0],
        'Metadata': {
            'Training Data': training_data(cfg),
            'Epochs': cfg.train_cfg.max_epochs,
            'Batch Size': total_batch_size(path, cfg),
            'Training Techniques': techniques,
        },
    }
    results = measured_results(path, training_data(cfg))
    if results:
        entry['Results'] = results
    entry['Config'] = str(path.relative_to(ROOT))
    return entry


def metafiles() -> dict:
    """{path: text} of model-index.yml and every metafile.yml."""
    files = {}
    imports = []
    for folder, (name, title, url) in COLLECTIONS.items():
        configs = sorted((ROOT / 'configs' / folder).glob('*.py'))
        metafile = {
            'Collections': [{
                'Name': name,
                'Paper': {'Title': title, 'URL': url},
                'README': (f'configs/{folder}/README.md'
                           if (ROOT / 'configs' / folder /
                               'README.md').exists() else 'docs/configs.md'),
            }],
            'Models': [model_entry(p) for p in configs],
        }
        path = ROOT / 'configs' / folder / 'metafile.yml'
        files[path] = yaml.safe_dump(metafile, sort_keys=False, width=79)
        imports.append(str(path.relative_to(ROOT)))
    files[ROOT / 'model-index.yml'] = yaml.safe_dump(
        {'Import': imports}, sort_keys=False)
    return files


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a file is out of date')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    import mmlsskd  # noqa: F401  (registers the configs' types)
    stale = []
    for path, text in metafiles().items():
        if not path.exists() or path.read_text() != text:
            stale.append(path.relative_to(ROOT))
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        sys.exit(f'Out of date: {", ".join(map(str, stale))}. Run python '
                 f'tools/misc/make_model_index.py.')
    print('model index: ' + ('up to date' if not stale else
                              f'wrote {len(stale)} file(s)'))


if __name__ == '__main__':
    main()
