"""LSSKD trained with ``tools/train.py --amp`` (mmengine's AmpOptimWrapper).

mmengine builds AmpOptimWrapper only where a GPU is present, so the test
lets it believe there is one. Everything else is what ``--amp`` runs: the
wrapper's ``optim_context`` autocasts the whole LSSKD forward (on the CPU in
bfloat16, the CPU's autocast type) and its GradScaler, which disables itself
without CUDA, wraps the backward and the step.
"""
import importlib.util

import pytest
import torch
from conftest import ROOT, hook_of, make_cfg
from mmengine.optim.optimizer import amp_optimizer_wrapper
from mmengine.runner import Runner


def train_script():
    spec = importlib.util.spec_from_file_location('train',
                                                  ROOT / 'tools/train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pretend_gpu(monkeypatch):
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)


@pytest.mark.filterwarnings('ignore:.*GradScaler is enabled')
def test_amp_trains_lsskd_in_reduced_precision(tiny_cfg_options, tmp_path,
                                                monkeypatch, pretend_gpu):
    train = train_script()
    config = str(ROOT / 'configs/lsskd/resnet18_cifar100.py')
    monkeypatch.setattr('sys.argv', [
        'train.py', config, '--amp', '--cfg-options',
        'optim_wrapper.dtype=bfloat16'
    ])
    args = train.parse_args()
    cfg = make_cfg(tiny_cfg_options, tmp_path)
    cfg = train.merge_args(cfg, args)
    cfg.work_dir = str(tmp_path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'

    runner = Runner.from_cfg(cfg)
    conv_dtypes, aux_dtypes = set(), set()

    def record(dtypes):

        def hook(module, inputs, output):
            if module.training:  # validation runs in full precision
                dtypes.add(output.dtype)

        return hook

    runner.model.architecture.backbone.conv1.register_forward_hook(
        record(conv_dtypes))
    runner.model.aux_head.classifiers[0].register_forward_hook(
        record(aux_dtypes))
    runner.train()

    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    # The backbone and the auxiliary branches ran in bfloat16 ...
    assert conv_dtypes == {torch.bfloat16}
    assert aux_dtypes == {torch.bfloat16}
    # ... every loss term stayed finite over both epochs ...
    for key in ('loss_cls', 'loss_hier', 'loss_kl', 'loss_feat'):
        values = runner.message_hub.log_scalars[f'train/{key}'].data[0]
        assert len(values) and all(map(torch.isfinite,
                                       torch.tensor(values))), key
    # ... the weights stayed float32 and finite ...
    for name, param in runner.model.named_parameters():
        assert param.dtype == torch.float32, name
        assert torch.isfinite(param).all(), name
    # ... and the store kept float32 distributions of every sample.
    store = hook_of(runner).store
    assert store.final.dtype == torch.float32
    assert (store.written_epoch == 1).all()
    assert torch.allclose(store.final.sum(1), torch.ones(store.num_samples),
                          atol=1e-2)
    assert torch.allclose(store.branches.sum(-1),
                          torch.ones(store.branches.shape[:-1]), atol=1e-2)
