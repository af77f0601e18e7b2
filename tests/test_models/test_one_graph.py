"""The PS-KD and LSSKD training forward traces as one graph, with batch
mixing too (a mixed and an unmixed batch give the same graph).

``compile_losses`` compiles :meth:`PSKD.compute_losses` (LSSKD's for LSSKD);
with ``fullgraph=True`` any graph break is an error, and with
``error_on_recompile`` so is a recompilation (a new epoch's ``alpha_t``
must enter as a tensor). ``aot_eager`` traces forward and backward as
``torch.compile`` does for a GPU, and runs the traced ATen graph on the CPU.
"""
import collections

import pytest
import torch
import torch._dynamo
from conftest import hook_of, make_cfg
from mmengine.runner import Runner

# 20 tiny images in batches of 5: every step has the same shapes.
STEPS_PER_EPOCH = 4


def train(options, work_dir, method, compile_losses=None, batch_size=5):
    """Two epochs; the logged losses of every step and the final store."""
    extra = dict(train_dataloader=dict(batch_size=batch_size),
                 randomness=dict(seed=0))
    if method == 'PSKD':
        extra['model'] = dict(type='PSKD', _delete_=True,
                              architecture=make_cfg(options,
                                                    work_dir).model.architecture)
    if method == 'LSSKD+CutMix':  # a mixing matrix enters the graph
        extra['model'] = dict(architecture=dict(train_cfg=dict(
            augments=[dict(type='CutMix', alpha=1.0)], probs=[0.5])))
    cfg = make_cfg(options, work_dir, **extra)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.model.compile_losses = compile_losses
    runner = Runner.from_cfg(cfg)
    runner.train()
    keys = [k for k in runner.message_hub.log_scalars
            if k.startswith('train/loss') or k.startswith('train/acc')]
    logged = {k: runner.message_hub.log_scalars[k].data[0] for k in keys}
    return logged, hook_of(runner).store.state_dict()


@pytest.mark.parametrize('method', ['PSKD', 'LSSKD', 'LSSKD+CutMix'])
def test_compiled_step_is_one_graph_with_the_eager_losses(
        tiny_cfg_options, tmp_path, method):
    eager, eager_store = train(tiny_cfg_options, tmp_path / 'eager', method)

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled, compiled_store = train(
            tiny_cfg_options, tmp_path / 'compiled', method,
            dict(backend='aot_eager', fullgraph=True))

    # Compiled once: one graph (train mode) for every step of both epochs.
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] == 1
    assert set(compiled) == set(eager)
    assert 'train/loss_cls' in eager
    if method.startswith('LSSKD'):
        assert {'train/loss_hier', 'train/loss_kl',
                'train/loss_feat'} <= set(eager)
    for key, values in eager.items():
        # Both epochs, alpha_t changing between them, without recompiling.
        assert len(values) == 2 * STEPS_PER_EPOCH, key
        torch.testing.assert_close(
            torch.tensor(compiled[key]), torch.tensor(values), rtol=1e-4,
            atol=1e-5, msg=key)
    # The store holds the same predictions of every sample.
    assert set(compiled_store) == set(eager_store)
    for key, value in eager_store.items():
        torch.testing.assert_close(compiled_store[key], value, rtol=1e-4,
                                   atol=1e-5, msg=key)
    assert (eager_store['written_epoch'] == 1).all()


# Every graph the counting backend was given: whether its shapes are
# symbolic, and how many times each ran.
traced, runs = [], collections.Counter()


@torch._dynamo.register_backend
def counting_backend(graph, example_inputs):
    index = len(traced)
    traced.append(any(
        isinstance(x, torch.SymInt) or isinstance(x, torch.Tensor)
        and any(isinstance(d, torch.SymInt) for d in x.shape)
        for x in example_inputs))

    def run(*args):
        runs[index] += 1
        return graph(*args)

    return run


def test_a_smaller_last_batch_is_traced_once_and_full_batches_stay_static(
        tiny_cfg_options, tmp_path):
    """20 images in batches of 6 end every epoch with 2, as CIFAR's 50,000
    in batches of 64 end with 16: that batch is traced once more, in the
    first epoch, and the full batches keep their static graph throughout
    (torch.compile's automatic dynamic shapes serve the short one only)."""
    torch._dynamo.reset()
    traced.clear()
    runs.clear()
    train(tiny_cfg_options, tmp_path, 'LSSKD',
          dict(backend='counting_backend', fullgraph=True), batch_size=6)
    assert traced == [False, True]  # static, then the short batch's
    assert runs == {0: 2 * 3, 1: 2}  # three full batches an epoch, one short
