"""Print every LSSKD loss term of a config's model at initialization.

Useful for choosing loss weights: it shows each term raw (weight 1) and with
the config's weight, on one random batch of the config's input size.

Example:
    python tools/analysis_tools/loss_terms.py \
        configs/lsskd/resnet18_cifar100.py --batch-size 16
"""
import argparse
import copy
import inspect

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmlsskd  # noqa: F401
from mmlsskd.engine import PastPredictionStore
from mmlsskd.models import LSSKD, RotationJointHead

WEIGHTED_LOSSES = {
    'loss_cls': ('loss_cls', ),
    'loss_hier': ('aux_head', 'loss_hier'),
    'loss_kl': ('aux_head', 'loss_kl'),
    'loss_feat': ('loss_feat', ),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='an LSSKD config')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def loss_terms(model_cfg: dict, batch_size: int, seed: int) -> dict:
    """Loss terms of a freshly initialized model on one random batch."""
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.attach_past_predictions(
        PastPredictionStore(batch_size, model.num_classes, model.num_views,
                            model.num_branches))
    size = model_cfg.get('aux_neck', {}).get('input_size', 224)
    size = (size, size) if isinstance(size, int) else tuple(size)
    inputs = torch.randn(batch_size, 3, *size)
    samples = [
        DataSample(metainfo=dict(sample_idx=i)).set_gt_label(
            i % model.num_classes) for i in range(batch_size)
    ]
    with torch.no_grad():
        losses = model.loss(inputs, samples)
    return {k: float(v) for k, v in losses.items() if k.startswith('loss')}


def main() -> None:
    args = parse_args()
    # mmengine logs every parameter's initialisation at INFO ('current' is
    # the newest logger): keep the output to the table.
    MMLogger.get_instance('loss_terms', log_level='WARNING')
    cfg = Config.fromfile(args.config)
    DefaultScope.get_instance(
        'loss_terms', scope_name=cfg.get('default_scope', 'mmpretrain'))
    raw_cfg = copy.deepcopy(cfg.model)
    weights = {}
    for term, path in WEIGHTED_LOSSES.items():
        # Spell out the defaults of LSSKD and RotationJointHead where the
        # config leaves a loss out, so its weight can be set to 1.
        node, owner = raw_cfg, LSSKD
        for key in path[:-1]:
            node.setdefault(key, dict(type='RotationJointHead'))
            node, owner = node[key], RotationJointHead
        default = inspect.signature(owner).parameters[path[-1]].default
        # ConfigDict stores a converted copy: read back what it holds.
        node.setdefault(path[-1], copy.deepcopy(default))
        loss = node[path[-1]]
        weights[term] = loss.get('loss_weight', 1.0)
        loss['loss_weight'] = 1.0
    raw = loss_terms(raw_cfg, args.batch_size, args.seed)
    print(f'{"term":<10} {"raw":>10} {"weight":>8} {"weighted":>10}')
    for term in WEIGHTED_LOSSES:
        print(f'{term:<10} {raw[term]:>10.3f} {weights[term]:>8g} '
              f'{raw[term] * weights[term]:>10.3f}')


if __name__ == '__main__':
    main()
