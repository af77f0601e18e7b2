"""Every shipped config builds its model and trains one step at tiny size.

Each config is loaded as a user would load it, then shrunk: the tiny
CIFAR-layout data (two images) instead of the real dataset, one epoch of
one iteration, no validation and no checkpoint. The model, the method,
its hooks, optimizer and schedule are the config's own.
"""
from pathlib import Path

import pytest
from conftest import write_tiny_cifar
from mmengine.config import Config
from mmengine.runner import Runner

from mmlsskd.engine import PastPredictionHook
from mmlsskd.utils.config_keys import unread_setting_warnings

CONFIG_ROOT = Path(__file__).parents[1] / 'configs'
CONFIGS = sorted(
    str(p.relative_to(CONFIG_ROOT)) for p in CONFIG_ROOT.rglob('*.py')
    if '_base_' not in p.parts)


def test_every_student_has_its_method_configs():
    students = [
        p.stem for p in (CONFIG_ROOT / '_base_/models/cifar100').glob('*.py')
    ]
    assert len(students) == 18
    for name in students:
        for config in (f'baselines/{name}_1xb64-240e_cifar100.py',
                       f'baselines/{name}_1xb64-240e-lbs_cifar100.py',
                       f'pskd/pskd_{name}_1xb64-240e_cifar100.py',
                       f'lsskd/lsskd_{name}_1xb64-240e_cifar100.py'):
            assert config in CONFIGS


def shrink(cfg: Config, data_root: Path, work_dir: Path) -> Config:
    """Point the config at two tiny images and train one iteration."""
    loader = cfg.train_dataloader
    dataset = loader.dataset
    while dataset.type == 'ClassStratifiedSubset':
        dataset = dataset.dataset
    pipeline = [
        t for t in dataset.pipeline if t['type'] != 'LoadImageFromFile'
    ]
    for key in list(dataset):
        dataset.pop(key)
    dataset.update(
        type='LocalCIFAR100',
        data_root=str(data_root),
        split='train',
        indices=2,
        pipeline=pipeline)
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_trains_one_step(config, tiny_cifar100, tmp_path):
    cfg = Config.fromfile(str(CONFIG_ROOT / config))
    # No top-level key of a shipped config looks like a misspelling.
    assert unread_setting_warnings(cfg) == []
    if cfg.model.type in ('LSSKD', 'PSKD'):
        # Every checkpoint holds the store: a bounded number is kept.
        kept = cfg.default_hooks.checkpoint.get('max_keep_ckpts', -1)
        assert 0 < kept <= 3
    num_classes = cfg.data_preprocessor.num_classes
    data = tiny_cifar100
    if num_classes != 100:  # Tiny-ImageNet, ImageNet
        data = write_tiny_cifar(tmp_path / 'data', num_names=num_classes)
    runner = Runner.from_cfg(shrink(cfg, data, tmp_path))
    runner.train()
    assert runner.iter == 1
    scalars = runner.message_hub.log_scalars
    assert 'train/loss' in scalars
    model = runner.model
    if type(model).__name__ in ('LSSKD', 'PSKD'):
        hook = next(h for h in runner.hooks
                    if isinstance(h, PastPredictionHook))
        # The step's predictions went into the store.
        assert bool((hook.store.written_epoch >= 0).all())
    if type(model).__name__ == 'LSSKD':
        # One branch per returned stage, all of them.
        assert model.num_branches == len(cfg.model.out_indices)
        assert {'train/loss_cls', 'train/loss_hier'} <= set(scalars)


@pytest.mark.parametrize('student', ['resnet20', 'resnet18', 'wrn16-2',
                                     'mobilenet-v2'])
def test_shipped_stages_are_the_ones_lsskd_would_pick(student):
    """The CIFAR configs name HSSAKD's stages; LSSKD's own choice
    (out_indices='auto') is the same, as docs/configs.md says."""
    from mmengine.registry import DefaultScope

    from mmlsskd.models.utils.backbone_stages import (choose_branch_stages,
                                                      probe_backbone_stages)
    cfg = Config.fromfile(
        str(CONFIG_ROOT / f'lsskd/lsskd_{student}_1xb64-240e_cifar100.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        stages = probe_backbone_stages(
            cfg.model.architecture.backbone.to_dict(), (32, 32))
    assert choose_branch_stages(stages) == tuple(cfg.model.out_indices)


COC_CONFIGS = [p for p in CONFIGS if '-coc' in p]


def test_every_method_has_its_cutout_cutmix_configs():
    assert COC_CONFIGS == [
        'baselines/resnet18_1xb64-240e-coc_cifar100.py',
        'baselines/resnet20_1xb64-240e-coc_cifar100.py',
        'lsskd/lsskd-coc_resnet18_1xb64-240e_cifar100.py',
        'lsskd/lsskd-coc_resnet20_1xb64-240e_cifar100.py',
        'pskd/pskd-coc_resnet18_1xb64-240e_cifar100.py',
        'pskd/pskd-coc_resnet20_1xb64-240e_cifar100.py',
    ]


@pytest.mark.parametrize('config', COC_CONFIGS)
def test_coc_configs_build_cutout_and_cutmix_as_documented(config):
    """The paper's COC rows as configs/_base_/datasets/cifar100_bs64_cutout.py
    and the baselines document them: one 8x8 Cutout hole on every image,
    filled with the mean pixel, after the crop and flip; CutMix with alpha 1
    on half of the batches, in the built model's data preprocessor (the
    wrapped classifiers' too)."""
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    from mmpretrain.models.utils.batch_augments import CutMix
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(CONFIG_ROOT / config))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(cfg.train_dataloader.dataset.pipeline).transforms
        model = MODELS.build(cfg.model)
    names = [type(t).__name__ for t in pipeline]
    assert names == ['RandomCrop', 'RandomFlip', 'Cutout', 'PackInputs']
    cutout = pipeline[2]
    assert (cutout.shape, cutout.prob, cutout.pad_val) == (8, 1.0,
                                                           (129, 124, 112))
    augments = model.data_preprocessor.batch_augments
    # LSSKD and PS-KD record the mixing around mmpretrain's augment.
    augments = getattr(augments, 'batch_augments', augments)
    cutmix = [a for a in augments.augments if isinstance(a, CutMix)]
    assert len(cutmix) == 1 and cutmix[0].alpha == 1.0
    assert augments.probs[augments.augments.index(cutmix[0])] == 0.5


@pytest.mark.parametrize('config', ['lsskd/resnet18_cifar100.py',
                                    'lsskd/lsskd_resnet20_1xb64-240e_'
                                    'cifar100.py'])
def test_the_shipped_method_is_the_papers(config):
    """The settings of METHOD.md, as the built model and hooks hold them:
    four rotations, soft cross-entropy on the classifier and the branches,
    hierarchical softening, KL at tau 3, feature consistency as a squared
    L2 distance at weight 0.01, alpha_T 0.8."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(str(CONFIG_ROOT / config))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    assert model.view_transform.angles == (0, 90, 180, 270)
    for loss in (model.loss_cls, model.aux_head.loss_hier):
        assert type(loss).__name__ == 'CrossEntropyLoss'
        assert loss.use_soft and loss.loss_weight == 1.0
    assert model.aux_head.hierarchical_softening
    kl = model.aux_head.loss_kl
    assert (type(kl).__name__, kl.tau, kl.loss_weight) == ('KLDivergence',
                                                           3.0, 1.0)
    feat = model.loss_feat
    assert (type(feat).__name__, feat.normalize,
            feat.loss_weight) == ('L2Loss', False, 0.01)
    hooks = {h['type']: h for h in cfg.custom_hooks}
    assert hooks['PastPredictionHook']['alpha_T'] == 0.8
    assert 'EpochSeedHook' in hooks
