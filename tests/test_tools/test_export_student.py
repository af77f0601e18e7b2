"""From an LSSKD checkpoint to a plain mmpretrain student and ONNX."""
import functools
import hashlib
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from conftest import (NUM_CLASSES, ROOT, make_cfg, run, run_main, serving,
                      tiny_options)
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmpretrain.registry import MODELS

from mmlsskd.deployment import student_config

CONFIG = 'configs/lsskd/resnet18_cifar100.py'
EXPORT = 'tools/deployment/export_student.py'
MMPRETRAIN_TEST = Path(
    __import__('mmpretrain').__file__).parent / '.mim/tools/test.py'


def image_folder(tiny_cifar: Path, root: Path) -> Path:
    """The tiny test split as class folders of PNGs (mmpretrain's
    CustomDataset), so mmpretrain alone can read it."""
    with open(tiny_cifar / 'cifar-100-python/test', 'rb') as f:
        entry = pickle.load(f)
    images = entry['data'].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    for i, (image, label) in enumerate(zip(images, entry['fine_labels'])):
        mmcv.imwrite(image[..., ::-1], str(root / f'class{label}/{i}.png'))
    return root


def on_image_folder(config: Path, root: Path, out: Path) -> str:
    """A config inheriting ``config`` whose test set is ``root``."""
    out.write_text(f"""_base_ = [{str(config)!r}]
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root={str(root)!r},
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
data_preprocessor = dict(to_rgb=True)
""")
    return str(out)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_cifar):
    """One tiny LSSKD epoch, exported with --onnx."""
    tmp = tmp_path_factory.mktemp('export')
    options = tiny_options(tiny_cifar) + ['train_cfg.max_epochs=1']
    run([
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(tmp / 'work'), '--cfg-options', *options
    ], tmp)
    checkpoint = tmp / 'work/epoch_1.pth'
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    out = run([
        sys.executable, EXPORT, CONFIG,
        str(checkpoint), '--out-dir',
        str(tmp / 'student'), '--onnx', '--cfg-options', *options
    ], tmp)
    return dict(
        tmp=tmp, options=options, checkpoint=checkpoint, digest=digest,
        out=out, student=tmp / 'student')


def lsskd_model(trained):
    """The trained LSSKD model, built from its config as tools/test.py does."""
    cfg = make_cfg(trained['options'], trained['tmp'] / 'model')
    init_default_scope('mmpretrain')
    model_cfg = dict(cfg.model, data_preprocessor=cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, str(trained['checkpoint']), logger='silent')
    return model.eval()


def test_export_writes_student_config_onnx_and_keeps_the_input(trained):
    student = trained['student']
    assert {p.name for p in student.iterdir()} == {
        'student.pth', 'student_config.py', 'student.onnx'
    }
    assert 'max |logit diff| = 0' in trained['out']
    assert 'onnxruntime vs PyTorch (opset 18' in trained['out']
    # The input checkpoint is only read.
    assert hashlib.sha256(trained['checkpoint'].read_bytes()).hexdigest() \
        == trained['digest']
    text = (student / 'student_config.py').read_text()
    for absent in ('mmlsskd', 'LSSKD', 'PastPredictionHook', 'aux_neck'):
        assert absent not in text


def test_mmpretrain_alone_loads_the_student_with_the_same_logits(trained):
    inputs = torch.randn(3, 3, 32, 32)
    torch.save(inputs, trained['tmp'] / 'inputs.pth')
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3),
                                               dtype=np.uint8)
    np.save(trained['tmp'] / 'image.npy', image)
    script = f'''
import sys, numpy, torch
from mmpretrain.apis import ImageClassificationInferencer, get_model
config = {str(trained["student"] / "student_config.py")!r}
weights = {str(trained["student"] / "student.pth")!r}
model = get_model(config, pretrained=weights)
model.eval()
inputs = torch.load({str(trained["tmp"] / "inputs.pth")!r})
image = numpy.load({str(trained["tmp"] / "image.npy")!r})
inferencer = ImageClassificationInferencer(config, pretrained=weights)
assert 'mmlsskd' not in sys.modules
with torch.no_grad():
    torch.save(dict(logits=model(inputs, mode='tensor'),
                    keys=sorted(model.state_dict()),
                    inferred=inferencer(image)[0]['pred_scores']),
               {str(trained["tmp"] / "mmpretrain_out.pth")!r})
'''
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = torch.load(trained['tmp'] / 'mmpretrain_out.pth')

    model = lsskd_model(trained)
    with torch.no_grad():
        ours = model(inputs, mode='tensor')
        predictions = model(inputs, [None] * 3, mode='predict')
    assert torch.allclose(theirs['logits'], ours, atol=1e-6)
    assert torch.allclose(
        torch.stack([p.pred_score for p in predictions]),
        theirs['logits'].softmax(1), atol=1e-6)
    # Exactly the plain classifier's keys: nothing auxiliary came along.
    plain = MODELS.build(
        Config.fromfile(str(trained['student'] /
                            'student_config.py')).model)
    assert theirs['keys'] == sorted(plain.state_dict())
    # The inferencer (its own preprocessing) scores as the LSSKD model does.
    image = torch.from_numpy(
        np.load(trained['tmp'] / 'image.npy')).permute(2, 0, 1)
    with torch.no_grad():
        ours = model.data_preprocessor(
            dict(inputs=[image], data_samples=None), False)['inputs']
        expected = model(ours, mode='tensor').softmax(1)[0]
    assert np.allclose(theirs['inferred'], expected.numpy(), atol=1e-6)


def test_mmpretrain_test_script_gives_tools_test_top1(trained, tiny_cifar,
                                                     monkeypatch, capfd):
    tmp = trained['tmp']
    folder = image_folder(tiny_cifar, tmp / 'images')
    ours = tmp / 'ours.json'
    run_main('tools/test.py', [
        on_image_folder(ROOT / CONFIG, folder, tmp / 'ours_cfg.py'),
        trained['checkpoint'], '--work-dir', tmp / 'test_ours', '--out',
        ours, '--out-item', 'metrics', '--cfg-options',
        *[o for o in trained['options'] if not o.startswith('test_')]
    ], monkeypatch, capfd)
    theirs = trained['tmp'] / 'theirs.json'
    run([
        sys.executable,
        str(MMPRETRAIN_TEST),
        on_image_folder(trained['student'] / 'student_config.py', folder,
                        tmp / 'theirs_cfg.py'),
        str(trained['student'] / 'student.pth'), '--work-dir',
        str(trained['tmp'] / 'test_theirs'), '--out',
        str(theirs), '--out-item', 'metrics'
    ], tmp)
    ours, theirs = json.loads(ours.read_text()), json.loads(
        theirs.read_text())
    assert ours['accuracy/top1'] == theirs['accuracy/top1']


def test_onnx_has_a_dynamic_batch_and_matches_pytorch(trained):
    import onnxruntime
    session = onnxruntime.InferenceSession(
        str(trained['student'] / 'student.onnx'),
        providers=['CPUExecutionProvider'])
    model = lsskd_model(trained)
    for batch in (1, 5):
        inputs = torch.randn(batch, 3, 32, 32)
        logits = session.run(None, {'input': inputs.numpy()})[0]
        with torch.no_grad():
            expected = model(inputs, mode='tensor').numpy()
        assert logits.shape == (batch, NUM_CLASSES)
        assert np.abs(logits - expected).max() < 1e-4


def export_refusal(monkeypatch, capfd, *argv) -> str:
    """What export_student.py prints when it refuses ``argv``."""
    return run_main(EXPORT, argv, monkeypatch, capfd, succeed=False)


def test_clear_errors_and_nothing_written(trained, tmp_path, monkeypatch,
                                          capfd):
    out_dir = str(tmp_path / 'out')
    common = ['--out-dir', out_dir, '--cfg-options', *trained['options']]
    out = export_refusal(monkeypatch, capfd, CONFIG,
                         str(tmp_path / 'missing.pth'), *common)
    assert 'missing.pth does not exist' in out
    # The exported student is a plain checkpoint, not an LSSKD one.
    out = export_refusal(monkeypatch, capfd, CONFIG,
                         str(trained['student'] / 'student.pth'), *common)
    assert "is not an LSSKD or PS-KD checkpoint" in out
    # A config whose classifier differs from the checkpoint's.
    out = export_refusal(monkeypatch, capfd, CONFIG,
                         str(trained['checkpoint']), *common,
                         'model.architecture.head.num_classes=7')
    assert 'does not fit the classifier of' in out
    assert 'Export with the config the checkpoint was trained with' in out
    assert not (tmp_path / 'out/student.pth').exists()
    # A tolerance no real export meets: the ONNX file is not left behind.
    out = export_refusal(monkeypatch, capfd, CONFIG,
                         str(trained['checkpoint']), '--onnx', '--atol',
                         '1e-15', *common)
    assert 'ONNX differs by more than --atol 1e-15' in out
    assert not (tmp_path / 'out/student.onnx').exists()
    assert hashlib.sha256(trained['checkpoint'].read_bytes()).hexdigest() \
        == trained['digest']


def test_student_config_of_other_shipped_configs():
    cfg, notes = student_config(
        Config.fromfile(
            str(ROOT / 'configs/few_shot/'
                'lsskd_resnet18_1xb64-240e_cifar100-25pct.py')))
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.train_dataloader.dataset.type == 'CIFAR100'
    assert 'custom_imports' not in cfg and 'custom_hooks' not in cfg
    assert any('ClassStratifiedSubset' in n for n in notes)
    # mmlsskd's hooks become their mmengine twins.
    assert cfg.default_hooks.runtime_info.type == 'RuntimeInfoHook'
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'

    cfg, notes = student_config(
        Config.fromfile(
            str(ROOT / 'configs/lsskd/lsskd_resnet20_1xb64-240e_cifar100.py')))
    # CIFARResNet is mmlsskd's: the config says it needs the import.
    assert cfg.custom_imports.imports == ['mmlsskd']
    assert any('CIFARResNet' in n for n in notes)

    with pytest.raises(ValueError, match='not LSSKD or PS-KD'):
        student_config(
            Config.fromfile(
                str(ROOT / 'configs/baselines/'
                    'resnet18_1xb64-240e_cifar100.py')))


def metrics_of(trained, tmp_path, monkeypatch, capfd, name, config,
               checkpoint, *extra) -> dict:
    """tools/test.py's metrics of ``checkpoint`` under ``config``."""
    out = tmp_path / f'{name}.json'
    run_main('tools/test.py', [
        config, checkpoint, '--work-dir', tmp_path / name, '--out', out,
        '--out-item', 'metrics', *extra, '--cfg-options', *trained['options']
    ], monkeypatch, capfd)
    return json.loads(out.read_text())


def test_every_checkpoint_form_and_documented_flag_tests(
        trained, tmp_path, monkeypatch, capfd):
    """--tta, a URL and torch.save's legacy format load, weights-only."""
    metrics = functools.partial(metrics_of, trained, tmp_path, monkeypatch,
                                capfd)
    zipped = metrics('zip', CONFIG, trained['checkpoint'])
    legacy = tmp_path / 'legacy.pth'
    torch.save(torch.load(trained['checkpoint'], map_location='cpu'), legacy,
               _use_new_zipfile_serialization=False)
    assert metrics('legacy', CONFIG, legacy) == zipped
    with serving(trained['checkpoint'].parent) as url:
        monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
        assert metrics('url', CONFIG, f'{url}/epoch_1.pth') == zipped
    tta = metrics('tta', CONFIG, trained['checkpoint'], '--tta')
    assert set(tta) == {'accuracy/top1', 'accuracy/top5'}


def test_a_checkpoint_that_does_not_fit_fails_the_test(trained, tmp_path,
                                                       monkeypatch, capfd):
    # The LSSKD training checkpoint under the exported plain config would
    # be tested as random weights.
    out = run_main('tools/test.py', [
        trained['student'] / 'student_config.py', trained['checkpoint'],
        '--work-dir', tmp_path / 'x', '--cfg-options',
        *[o for o in trained['options'] if o.startswith('test_dataloader')]
    ], monkeypatch, capfd, succeed=False)
    assert f'test: checkpoint {trained["checkpoint"]} is not one of this ' \
        'model (missing backbone.' in out
    assert 'export the plain classifier first' in out
    assert 'Epoch(test)' not in out


def test_export_checks_its_input_as_strictly_as_training(trained, tmp_path,
                                                         monkeypatch, capfd):
    common = ['--out-dir', str(tmp_path / 'out'), '--cfg-options',
              *trained['options']]
    data = bytearray(trained['checkpoint'].read_bytes())
    with zipfile.ZipFile(trained['checkpoint']) as archive:
        info = next(i for i in archive.infolist()
                    if i.file_size > 1000 and i.compress_type == 0)
    # One flipped byte inside a stored tensor: a valid zip, a bad CRC.
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(
        info.extra) + info.file_size // 2
    data[offset] ^= 0xFF
    flipped = tmp_path / 'flipped.pth'
    flipped.write_bytes(bytes(data))
    out = export_refusal(monkeypatch, capfd, CONFIG, str(flipped),
                         *common)
    assert f'export: checkpoint {flipped} is truncated or corrupt' in out
    # Non-finite weights are refused too.
    checkpoint = torch.load(trained['checkpoint'], map_location='cpu')
    key = next(k for k in checkpoint['state_dict']
               if k.startswith('architecture.head'))
    checkpoint['state_dict'][key].view(-1)[0] = float('inf')
    torch.save(checkpoint, tmp_path / 'inf.pth')
    out = export_refusal(monkeypatch, capfd, CONFIG,
                         str(tmp_path / 'inf.pth'), *common)
    assert f'has non-finite weights in {key}' in out
    assert not (tmp_path / 'out/student.pth').exists()
