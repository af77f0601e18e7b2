"""Print the FLOPs a config's model costs in training beside the deployed
classifier's.

mmpretrain's ``tools/analysis_tools/get_flops.py`` measures the deployed
classifier of an LSSKD or PS-KD config (the same as the plain config's).
This tool adds what training costs per image: the training forward, every
view through the backbone and the auxiliary branches. Both are counted with
PyTorch's ``FlopCounterMode`` (convolutions and matrix products, as they
run; mmengine's analyzer, which ``get_flops.py`` uses, cannot trace a
forward that takes data samples).

Example::

    python tools/analysis_tools/training_flops.py \\
        configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py
"""
import argparse

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.flop_counter import FlopCounterMode

import mmlsskd  # noqa: F401  (registers LSSKD's components)
from mmlsskd.engine import PastPredictionStore


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='an LSSKD, PS-KD or plain config')
    parser.add_argument(
        '--input-size', type=int, default=None,
        help='image size (default: the auxiliary neck\'s, else 224)')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='key=value overrides of the config')
    return parser.parse_args()


def count_flops(fn) -> int:
    """FLOPs of ``fn()``, run without gradients."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return counter.get_total_flops()


def training_flops(model_cfg: dict, input_size: int,
                   batch_size: int) -> dict:
    """Per-image forward FLOPs of the deployed classifier and of training.

    Returns:
        dict: ``deployed``, ``training`` and their ``ratio``.
    """
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.eval()  # BN uses running statistics: the counts are the same
    if hasattr(model, 'attach_past_predictions'):
        model.attach_past_predictions(PastPredictionStore(
            batch_size, model.num_classes, model.num_views,
            model.num_branches))
    images = torch.randn(batch_size, 3, input_size, input_size)
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(0)
               for i in range(batch_size)]
    deployed = count_flops(lambda: model(images, mode='tensor'))
    training = count_flops(lambda: model.loss(images, samples))
    return dict(deployed=deployed / batch_size,
                training=training / batch_size,
                ratio=training / deployed)


def report(config: str, size: int, flops: dict) -> list:
    """The lines the tool prints (docs/deployment.md shows them)."""
    return [
        f'{config} at {size}x{size}, forward FLOPs per image '
        f'(FlopCounterMode):',
        f'  deployed classifier: {flops["deployed"] / 1e9:.4f} G',
        f'  training forward:    {flops["training"] / 1e9:.4f} G '
        f'({flops["ratio"]:.2f} x)',
    ]


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    DefaultScope.get_instance('training_flops',
                              scope_name=cfg.get('default_scope',
                                                 'mmpretrain'))
    size = args.input_size or cfg.model.get('aux_neck', {}).get(
        'input_size', 224)
    flops = training_flops(cfg.model, size, args.batch_size)
    print('\n'.join(report(args.config, size, flops)))


if __name__ == '__main__':
    main()
