"""LSSKD mixed into mmpretrain's own ConvNeXt, DeiT, Swin and ViT recipes
with their batch mixing (Mixup + CutMix, or Mixup) kept: the README's
snippet on each recipe, with the feature-map settings docs/mixing.md asks
for, builds and trains a mixed step.

Each recipe is inherited as a user's config inherits it; only the width and
depth (and the image size) shrink, so that a step is fast on a CPU: the
recipe's train_cfg, head and data preprocessor are its own.
"""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmlsskd.engine import PastPredictionStore

GAP = dict(type='GlobalAveragePooling')
TINY_VIT = dict(arch=dict(embed_dims=16, num_layers=8, num_heads=2,
                          feedforward_channels=32),
                img_size=32, patch_size=8, out_type='featmap')
# recipe: (the backbone's tiny settings, and what docs/mixing.md asks for;
# the neck; the head's input width)
RECIPES = {
    'convnext/convnext-tiny_32xb128_in1k.py':
    (dict(arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
          gap_before_final_norm=False), GAP, 64),
    'deit/deit-tiny_4xb256_in1k.py': (TINY_VIT, GAP, 16),
    'swin_transformer/swin-tiny_16xb64_in1k.py':
    (dict(arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                    num_heads=[1, 1, 2, 2]),
          img_size=32, patch_size=2, window_size=2), GAP, 128),
    'vision_transformer/vit-base-p16_64xb64_in1k.py': (TINY_VIT, GAP, 16),
}
NUM_CLASSES = 1000


def mixin_config(tmp_path: Path, recipe: str) -> Config:
    path = tmp_path / 'my_lsskd.py'
    path.write_text(f"""
_base_ = ['mmpretrain::{recipe}']
custom_imports = dict(imports=['mmlsskd'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='LSSKD',
    architecture=_base_.model,
    aux_neck=dict(type='AuxiliaryBranchNeck', input_size=32))
""")
    return Config.fromfile(str(path))


@pytest.mark.parametrize('recipe', RECIPES)
def test_lsskd_trains_a_recipe_with_its_batch_mixing_kept(recipe, tmp_path):
    cfg = mixin_config(tmp_path, recipe)
    architecture = cfg.model.architecture
    augments = architecture.train_cfg.augments
    augments = augments if isinstance(augments, list) else [augments]
    assert 'Mixup' in [a['type'] for a in augments]
    backbone, neck, width = RECIPES[recipe]
    architecture.backbone.update(backbone)
    architecture.neck = neck
    architecture.head.in_channels = width
    # The Runner gives the model the config's top-level preprocessor.
    cfg.model.data_preprocessor = cfg.data_preprocessor
    DefaultScope.get_instance(f'recipe_{recipe}',
                              scope_name=cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    assert model.mixes_batches
    model.attach_past_predictions(PastPredictionStore(
        4, NUM_CLASSES, model.num_views, model.num_branches))
    optim = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))

    mixed = []
    recorder = model.data_preprocessor.batch_augments
    pop = recorder.pop_mixing

    def spy(batch_size):
        mixing = pop(batch_size)
        mixed.append(mixing)
        return mixing

    recorder.pop_mixing = spy
    data = dict(
        inputs=torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8),
        data_samples=[
            DataSample(metainfo=dict(sample_idx=i)).set_gt_label(i)
            for i in range(4)
        ])
    torch.manual_seed(1)
    log_vars = model.train_step(data, optim)
    assert torch.isfinite(log_vars['loss'])
    # The step was mixed (every one of these recipes mixes every batch),
    # and the mix reached the targets.
    (mixing, ) = mixed
    assert mixing is not None and not torch.equal(mixing, torch.eye(4))
    assert {'loss_cls', 'loss_hier'} <= set(log_vars)
