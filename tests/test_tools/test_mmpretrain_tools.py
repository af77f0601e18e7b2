"""mmpretrain's own analysis tools on LSSKD configs."""
import sys
from pathlib import Path

import mmpretrain
from conftest import run
from mmengine.analysis import get_model_complexity_info

MMPRETRAIN_TOOLS = Path(mmpretrain.__file__).parent / '.mim/tools'


def test_get_flops_counts_the_deployed_classifier(tmp_path):
    """get_flops.py refused LSSKD (no extract_feat); it now reports the
    wrapped classifier: the FLOPs of the plain baseline classifier."""
    out = run([
        sys.executable,
        str(MMPRETRAIN_TOOLS / 'analysis_tools/get_flops.py'),
        'configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py', '--shape', '32'
    ], tmp_path)
    lsskd = next(line for line in out.splitlines()
                 if line.startswith('Flops:')).split()[1]
    # What the same script computes for the plain classifier.
    plain = mmpretrain.get_model(
        'configs/baselines/resnet20_1xb64-240e_cifar100.py').eval()
    plain.forward = plain.extract_feat
    expected = get_model_complexity_info(plain, (3, 32, 32))['flops_str']
    assert lsskd == expected and lsskd != '0'


def test_training_flops_beside_the_deployed_classifiers():
    """tools/analysis_tools/training_flops.py: the deployed LSSKD classifier
    costs what the plain one costs, and its training forward (four views
    through the backbone and the three branches) 9.25 times that; what it
    prints is what docs/deployment.md shows."""
    from mmengine.config import Config
    root = Path(__file__).parents[2]
    sys.path.insert(0, str(root / 'tools/analysis_tools'))
    try:
        from training_flops import report, training_flops
    finally:
        sys.path.pop(0)
    config = 'configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py'
    lsskd, plain = (
        training_flops(Config.fromfile(str(root / path)).model, 32, 2)
        for path in (config,
                     'configs/baselines/resnet20_1xb64-240e_cifar100.py'))
    assert lsskd['deployed'] == plain['deployed'] == plain['training'] > 0
    assert round(lsskd['ratio'], 2) == 9.25
    transcript = '\n'.join([
        f'$ python tools/analysis_tools/training_flops.py {config} '
        f'--input-size 32', *report(config, 32, lsskd)
    ])
    assert transcript in (root / 'docs/deployment.md').read_text()
