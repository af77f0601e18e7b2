"""Where the past-prediction store lives: host, pinned host or the GPU."""
import pytest
import torch
from conftest import hook_of, make_cfg
from mmengine.runner import Runner

from mmlsskd.engine import PastPredictionHook, PastPredictionStore
from mmlsskd.utils import LSSKDConfigError

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason='needs a CUDA GPU')
SIZES = dict(num_samples=7, num_classes=5, num_views=4, num_branches=3)


@pytest.mark.parametrize('options', [
    dict(), dict(dtype='float16'), dict(dtype='bfloat16', topk=3),
    dict(topk=32), dict(topk=4, branch_views='unrotated')
])
def test_the_size_estimate_is_what_the_store_allocates(options):
    store = PastPredictionStore(**SIZES, **options)
    assert PastPredictionStore.estimate_nbytes(**SIZES, **options) == \
        store.nbytes


@pytest.mark.skipif(CUDA, reason='checks the message of a machine '
                    'without CUDA')
@pytest.mark.parametrize('device', ['pinned', 'cuda', 'cuda:0'])
def test_gpu_placements_without_cuda_are_refused_early(device):
    with pytest.raises(LSSKDConfigError, match='needs CUDA'):
        PastPredictionHook(store=dict(device=device))


def test_an_unknown_placement_is_named():
    with pytest.raises(LSSKDConfigError, match="device must be 'cpu'"):
        PastPredictionHook(store=dict(device='gpu0'))


def lookup_update_cycle(store, device):
    """Write two steps and read them back; what a training loop does."""
    g = torch.Generator().manual_seed(0)
    out = []
    for epoch in range(2):
        indices = torch.randperm(7, generator=g)[:4]
        past = store.lookup(indices, device)
        out.append(past)
        final = torch.softmax(torch.randn(4, 5, generator=g), 1)
        branches = torch.softmax(torch.randn(3, 4, 4, 20, generator=g), -1)
        store.update(indices, final.to(device), branches.to(device), epoch)
    return out


def test_a_store_on_the_cpu_stays_there_and_returns_on_the_model_device():
    store = PastPredictionStore(**SIZES, device='cpu')
    for past in lookup_update_cycle(store, torch.device('cpu')):
        assert past.final.device.type == 'cpu'
    assert all(t.device.type == 'cpu' for t in store.state_dict().values())


def test_auto_placement_without_a_gpu_is_the_host_and_is_logged(
        tiny_cfg_options, tmp_path):
    runner = Runner.from_cfg(
        make_cfg(tiny_cfg_options, tmp_path, train_cfg=dict(max_epochs=1)))
    runner.train()
    store = hook_of(runner).store
    expected = 'cuda' if CUDA else 'cpu'
    assert store.device.type == expected
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'Past-prediction store: ' in log and ' MiB on ' in log


@needs_cuda
@pytest.mark.parametrize('device', ['pinned', 'cuda'])
def test_gpu_placements_hold_what_the_host_store_holds(device):
    host = PastPredictionStore(**SIZES, device='cpu')
    placed = PastPredictionStore(**SIZES, device=device)
    cuda = torch.device('cuda')
    for a, b in zip(lookup_update_cycle(host, cuda),
                    lookup_update_cycle(placed, cuda)):
        for x, y in zip(a, b):
            assert torch.equal(x.cpu(), y.cpu())
    for key, value in host.state_dict().items():
        assert torch.equal(value, placed.state_dict()[key].cpu()), key


@needs_cuda
def test_a_device_store_step_does_not_wait_for_the_host():
    store = PastPredictionStore(**SIZES, device='cuda')
    indices = torch.tensor([0, 3, 5, 6])
    final = torch.softmax(torch.randn(4, 5, device='cuda'), 1)
    branches = torch.softmax(torch.randn(3, 4, 4, 20, device='cuda'), -1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        store.lookup(indices, torch.device('cuda'))
        store.update(indices, final, branches, epoch=0)
    finally:
        torch.cuda.set_sync_debug_mode('default')
