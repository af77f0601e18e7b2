"""The study's regimes shipped as configs: each trains what the study
script trained for the rows it reports, so that `tools/train.py CONFIG`
reproduces a row of docs/results.md and the model index may carry its
measured top-1."""
import argparse
import re
import sys

import pytest
from conftest import ROOT
from mmengine.config import Config

sys.path.insert(0, str(ROOT / 'tools/benchmarks'))
from cifar100_study_methods import (STUDY_CONFIGS,  # noqa: E402
                                    StudyRow, load_results)

# Where the shipped config may differ from the study's: how the data are
# found and loaded (the study reads the local folder it is given, in the
# main process, on two cores), how often the log is written and under which
# registry scope a base's types resolve. None of it changes what is trained
# or measured.
HOW_IT_RUNS = re.compile(
    r'(^|\.)_scope_$|dataset\.(type|data_root)$|\.num_workers$|'
    r'\.persistent_workers$|^(val|test)_dataloader\.batch_size$|'
    r'^default_hooks\.logger\.interval$')
# Settings the study leaves at their defaults and the shipped configs
# inherit spelled out.
DEFAULTS = {
    'default_hooks.checkpoint.save_best': None,
    'randomness.deterministic': False,
    'train_dataloader.dataset.holdout': 0.0,
    'train_dataloader.dataset.split': 'train',
}


def flat(value, prefix=''):
    """{'a.b[0].c': leaf} of a nested config."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((f'[{i}]', v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    out = {}
    for key, item in items:
        joined = (f'{prefix}{key}' if str(key).startswith('[') or not prefix
                  else f'{prefix}.{key}')
        out.update(flat(item, joined))
    return out


def study_settings(row: StudyRow) -> list:
    """The study's settings of each committed run of ``row`` (its result
    files record them); the row's own where none has finished yet."""
    runs = load_results(row.regime_args()).get(row.method)
    if runs:
        return runs
    return [dict(row._asdict(), holdout=0.0, channels_last=True,
                 cfg_options={}, val_interval=None)]


@pytest.mark.parametrize('row', sorted(STUDY_CONFIGS), ids=str)
def test_a_shipped_study_config_trains_what_the_study_trained(row):
    from cifar100_cpu_study import study_config
    shipped_cfg = Config.fromfile(str(ROOT / STUDY_CONFIGS[row]))
    shipped = {**DEFAULTS, **flat(shipped_cfg.to_dict())}
    for run in study_settings(row):
        args = argparse.Namespace(
            data='/elsewhere/cifar-100-python', model=run['model'],
            fraction=run['fraction'], holdout=run['holdout'],
            epochs=run['epochs'], precision=run['precision'],
            channels_last=run['channels_last'],
            cfg_options=run['cfg_options'],
            val_interval=(run['val_interval']
                          or shipped_cfg.train_cfg.val_interval))
        study = {**DEFAULTS,
                 **flat(study_config(run['method'], 0, args).to_dict())}
        differ = {key for key in shipped.keys() | study.keys()
                  if shipped.get(key, '-') != study.get(key, '-')}
        assert {k for k in differ if not HOW_IT_RUNS.search(k)} == set(), \
            {k: (study.get(k), shipped.get(k)) for k in differ}
    # The study's seed 0 draws the subset and seeds training with 0.
    assert shipped['randomness.seed'] == 0
    assert shipped['train_dataloader.dataset.seed'] == 0


def test_the_comparison_sees_a_setting_that_changes_training():
    """What the test above ignores is only how the data load and the log
    is written: a changed milestone, subset seed or precision shows."""
    cfg = Config.fromfile(str(ROOT / STUDY_CONFIGS[StudyRow(
        'lsskd', 'resnet20', 0.2, 60, 'bf16')]))
    before = flat(cfg.to_dict())
    cfg.merge_from_dict({'param_scheduler.milestones': [38, 45, 53],
                         'train_dataloader.dataset.seed': 1,
                         'optim_wrapper.type': 'OptimWrapper'})
    after = flat(cfg.to_dict())
    differ = {k for k in before if before[k] != after[k]}
    assert differ == {'param_scheduler.milestones[2]',
                      'train_dataloader.dataset.seed', 'optim_wrapper.type'}
    assert not any(HOW_IT_RUNS.search(k) for k in differ)
