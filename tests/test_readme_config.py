"""The README's mix-in example builds and trains as written."""
import re
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionStore

README = Path(__file__).parents[1] / 'README.md'


def readme_mixin_config() -> str:
    text = README.read_text()
    section = text[text.index('## Mix LSSKD into your own'):]
    return re.search(r'```python\n(.*?)```', section, re.S).group(1)


def test_readme_mixin_config_trains_one_step(tmp_path):
    path = tmp_path / 'my_lsskd.py'
    path.write_text(readme_mixin_config())
    cfg = Config.fromfile(str(path))
    assert cfg.model.architecture.backbone.type == 'ResNet_CIFAR'
    assert [h.type for h in cfg.custom_hooks] == [
        'PastPredictionHook', 'EpochSeedHook']
    # Shrink the inherited ResNet-50 so the step is fast on a CPU.
    cfg.model.architecture.backbone.base_channels = 4
    cfg.model.architecture.backbone.stem_channels = 4
    cfg.model.architecture.head.in_channels = 128
    cfg.model.data_preprocessor = cfg.data_preprocessor
    DefaultScope.get_instance('readme_test', scope_name=cfg.default_scope)

    model = MODELS.build(cfg.model)
    assert model.architecture.backbone.out_indices == (0, 1, 2, 3)
    assert model.num_classes == 100 and model.num_branches == 4
    model.attach_past_predictions(PastPredictionStore(4, 100, 4, 4))
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data = dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)] * 2,
        data_samples=[
            DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i)
            for i in range(2)
        ])
    log_vars = model.train_step(data, optim)
    assert torch.isfinite(log_vars['loss'])


def test_readme_mixin_keeps_the_base_configs_hooks(tmp_path):
    """On a base with its own custom_hooks (ConvNeXt's EMAHook) the mix-in
    adds LSSKD's hooks instead of replacing the base's."""
    snippet = readme_mixin_config().replace(
        'resnet/resnet50_8xb16_cifar100.py',
        'convnext/convnext-tiny_32xb128_in1k.py')
    path = tmp_path / 'my_lsskd.py'
    path.write_text(snippet)
    cfg = Config.fromfile(str(path))
    assert [h.type for h in cfg.custom_hooks] == [
        'EMAHook', 'PastPredictionHook', 'EpochSeedHook']


def test_readme_mixin_keeps_a_bounded_number_of_checkpoints(tmp_path):
    """Every checkpoint holds the past-prediction store: the base recipe's
    every-epoch checkpoints, all kept, would fill a disk (the run refuses
    to start where they do not fit, docs/reliability.md)."""
    path = tmp_path / 'my_lsskd.py'
    path.write_text(readme_mixin_config())
    checkpoint = Config.fromfile(str(path)).default_hooks.checkpoint
    assert checkpoint.type == 'AtomicCheckpointHook'
    assert 0 < checkpoint.max_keep_ckpts <= 3
