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
