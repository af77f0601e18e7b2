"""mmpretrain's own analysis tools on LSSKD configs."""
import sys
from pathlib import Path

import mmpretrain
from conftest import run

MMPRETRAIN_TOOLS = Path(mmpretrain.__file__).parent / '.mim/tools'


def flops_line(config, tmp_path) -> str:
    out = run([
        sys.executable,
        str(MMPRETRAIN_TOOLS / 'analysis_tools/get_flops.py'), config,
        '--shape', '32'
    ], tmp_path)
    return next(line for line in out.splitlines()
                if line.startswith('Flops:'))


def test_get_flops_counts_the_deployed_classifier(tmp_path):
    """get_flops.py refused LSSKD (no extract_feat); it now reports the
    wrapped classifier, the same FLOPs as the plain baseline's."""
    lsskd = flops_line('configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py',
                       tmp_path)
    plain = flops_line('configs/baselines/resnet20_1xb64-240e_cifar100.py',
                       tmp_path)
    assert lsskd == plain
    assert lsskd.split()[1] != '0'
