"""The OpenMMLab workflow: ``mmlsskd::`` config inheritance, the shipped
configs in mmpretrain's model hub and in the model index mim reads, and an
installed package that carries its configs and tools under ``.mim``."""
import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import mmpretrain
import yaml
from mmengine.config import Config

ROOT = Path(__file__).parents[1]
CONFIG_FOLDERS = ('lsskd', 'few_shot', 'pskd', 'baselines')


def shipped_configs() -> set:
    return {
        str(p.relative_to(ROOT)) for folder in CONFIG_FOLDERS
        for p in (ROOT / 'configs' / folder).glob('*.py')
    }


def model_index_entries() -> list:
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    return [
        model for metafile in index['Import']
        for model in yaml.safe_load((ROOT / metafile).read_text())['Models']
    ]


def test_another_projects_config_inherits_mmlsskd_configs(tmp_path):
    config = tmp_path / 'my_lsskd.py'
    config.write_text(
        "_base_ = 'mmlsskd::lsskd/lsskd_resnet20_1xb64-240e_cifar100.py'\n"
        "train_cfg = dict(max_epochs=3)\n")
    cfg = Config.fromfile(str(config))
    assert cfg.model.type == 'LSSKD'
    assert cfg.model.out_indices == (0, 1, 2)
    assert cfg.train_cfg.max_epochs == 3
    # The shipped config's own _base_ chain, mmpretrain:: included, resolved.
    assert cfg.optim_wrapper.optimizer.nesterov is True


def test_model_index_lists_every_shipped_config():
    entries = model_index_entries()
    assert {e['Config'] for e in entries} == shipped_configs()
    names = [e['Name'] for e in entries]
    assert len(names) == len(set(names))
    assert all(e['Name'] == Path(e['Config']).stem for e in entries)


def test_model_index_is_what_the_generator_writes():
    """A few entries in full: the generator reads them from the configs
    (all of them would take a minute of config parsing)."""
    spec = importlib.util.spec_from_file_location(
        'make_model_index', ROOT / 'tools/misc/make_model_index.py')
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    entries = {e['Config']: e for e in model_index_entries()}
    for config in ('configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py',
                   'configs/few_shot/resnet18_1xb64-240e_cifar100-25pct.py',
                   'configs/lsskd/lsskd_resnet18_8xb32_in1k.py',
                   *generator.STUDY_CONFIGS.values()):
        assert entries[config] == generator.model_entry(ROOT / config)


def test_a_study_config_carries_the_mean_of_its_three_runs():
    """mmpretrain's Results of the study's LSSKD config: the test top-1 at
    the last epoch of seeds 0-2, averaged; the 240e-trained configs of the
    paper's regime have none (never trained on their own schedule)."""
    entries = {e['Name']: e for e in model_index_entries()}
    runs = [
        json.loads((ROOT / 'docs/results/cifar100_study' /
                    f'lsskd_resnet20_0.2frac_60e_bf16_seed{s}.json'
                    ).read_text())['last'] for s in (0, 1, 2)
    ]
    entry = entries['lsskd_resnet20_1xb64-60e-bf16_cifar100-20pct']
    assert entry['Results'] == [{
        'Task': 'Image Classification',
        'Dataset': 'CIFAR-100',
        'Metrics': {
            'Top 1 Accuracy': round(sum(r['top1'] for r in runs) / 3, 2),
            'Top 5 Accuracy': round(sum(r['top5'] for r in runs) / 3, 2),
        },
    }]
    assert 'Mixed Precision Training' in \
        entry['Metadata']['Training Techniques']
    assert 'Results' not in entries['lsskd_resnet20_1xb64-240e_cifar100']


def test_mmpretrain_finds_the_shipped_configs_by_name():
    names = mmpretrain.list_models('lsskd_resnet20*')
    assert 'lsskd_resnet20_1xb64-240e_cifar100' in names
    model = mmpretrain.get_model('lsskd_resnet20_1xb64-240e_cifar100')
    assert type(model).__name__ == 'LSSKD' and model.num_branches == 3


def test_a_built_package_carries_configs_tools_and_index(tmp_path):
    """What mim (`mim train/test/search mmlsskd`) and mmengine look for in
    an installed package. Built from a copy, because a build copies them
    into the source tree's mmlsskd/.mim."""
    source = tmp_path / 'src'
    for name in ('mmlsskd', 'configs', 'tools', 'requirements'):
        shutil.copytree(ROOT / name, source / name, symlinks=False,
                        ignore=shutil.ignore_patterns('.mim', '__pycache__',
                                                      '*.egg-info'))
    for name in ('setup.py', 'setup.cfg', 'README.md', 'LICENSE',
                 'model-index.yml'):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '--quiet', '--wheel-dir',
        str(tmp_path / 'dist'), str(source)
    ], check=True)
    wheel, = (tmp_path / 'dist').glob('mmlsskd-*.whl')
    files = set(zipfile.ZipFile(wheel).namelist())
    mim = 'mmlsskd/.mim/'
    assert mim + 'model-index.yml' in files
    for tool in ('train.py', 'test.py', 'dist_train.sh',
                 'deployment/export_student.py'):
        assert mim + 'tools/' + tool in files
    for config in shipped_configs() | {
            'configs/lsskd/metafile.yml',
            'configs/_base_/methods/lsskd.py'}:
        assert mim + config in files, config


def test_models_never_import_the_engine():
    """As in mmpretrain, the layers read one way: the engine (hooks, store)
    uses the models, never the reverse; what both need lives in
    ``mmlsskd.structures`` or the models' utils."""
    import re
    from pathlib import Path
    models = Path(__file__).resolve().parents[1] / 'mmlsskd/models'
    offenders = [
        str(path.relative_to(models)) for path in models.rglob('*.py')
        if re.search(r'^from \.+engine|^import mmlsskd\.engine|'
                     r'^from mmlsskd\.engine', path.read_text(), re.M)
    ]
    assert not offenders
