"""tools/analysis_tools/loss_terms.py prints raw and weighted terms."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_prints_every_term_raw_and_weighted(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(f"""
_base_ = ['{ROOT}/configs/lsskd/resnet18_cifar100.py']
model = dict(
    architecture=dict(
        backbone=dict(base_channels=4), head=dict(in_channels=32)),
    loss_feat=dict(loss_weight=0.5))
""")
    out = subprocess.run(
        [sys.executable, 'tools/analysis_tools/loss_terms.py',
         str(config), '--batch-size', '4'],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rows = {
        line.split()[0]: [float(v) for v in line.split()[1:]]
        for line in out.splitlines()[-4:]
    }
    assert set(rows) == {'loss_cls', 'loss_hier', 'loss_kl', 'loss_feat'}
    assert rows['loss_feat'][1] == 0.5 and rows['loss_cls'][1] == 1.0
    for raw, weight, weighted in rows.values():
        assert raw >= 0 and abs(raw * weight - weighted) < 1e-3
