"""A top-level key nothing reads that looks like one that is read (a
likely misspelling, which mmengine ignores) is reported at start; the
helper variables configs define stay silent (every shipped config too:
test_configs.py); tools/train.py logs them at start (test_cli.py)."""
import pytest
from mmengine.config import Config

from mmlsskd.utils.config_keys import near_misses, unread_setting_warnings


@pytest.mark.parametrize('key, meant', [
    ('custom_hook', 'custom_hooks'), ('defualt_hooks', 'default_hooks'),
    ('default_hook', 'default_hooks'), ('train_cfgs', 'train_cfg'),
    ('trian_cfg', 'train_cfg'), ('optim_wraper', 'optim_wrapper'),
    ('param_schedulers', 'param_scheduler'), ('loadfrom', 'load_from')
])
def test_a_misspelt_key_is_named_with_the_key_it_resembles(key, meant):
    cfg = Config(dict(model=dict(type='LSSKD'), **{key: []}))
    warnings = unread_setting_warnings(cfg)
    assert len(warnings) == 1
    assert f"top-level key {key!r} is read by nothing and looks like " \
        f"{meant!r}" in warnings[0]


def test_keys_that_are_read_and_helper_variables_are_silent():
    keys = ['model', 'custom_hooks', 'default_hooks', 'train_cfg',
            'train_dataloader', 'auto_scale_lr', 'compile', 'runner_type',
            'custom_imports', 'tta_model', 'data_root', 'train_pipeline',
            'test_pipeline', 'lsskd', 'dataset_type', 'data_preprocessor',
            'bgr_mean', 'bgr_std', 'norm_cfg', 'max_epochs']
    assert near_misses(keys) == []

