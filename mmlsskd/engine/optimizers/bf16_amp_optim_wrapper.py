from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.runner.amp import autocast
from mmpretrain.registry import OPTIM_WRAPPERS


def cpu_runs_bf16_natively() -> bool:
    """Whether this CPU computes in bfloat16 natively (oneDNN's own check:
    AVX-512, with BF16 or AMX at best). Elsewhere, e.g. on an AVX2-only
    CPU, bfloat16 autocast is emulated: a ResNet-20 training step took 16x
    as long as in float32 on an AVX2 AMD EPYC (docs/benchmarks.md,
    "bfloat16 on the CPU")."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, False where unknown. With AVX-512
    BF16 alone, bfloat16 runs natively yet need not beat float32: on a
    2-core Xeon without AMX a channels-last ResNet-20 LSSKD step took 1.22x
    as long in bfloat16 (docs/benchmarks.md, "bfloat16 on the CPU")."""
    try:  # torch's own CPU feature check; private, so guarded
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


@OPTIM_WRAPPERS.register_module()
class BF16AmpOptimWrapper(OptimWrapper):
    """Mixed-precision training in bfloat16, on any device.

    The training forward (and so the backward) runs under
    ``torch.autocast`` with ``dtype=torch.bfloat16`` on the device mmengine
    trains on; the weights, their gradients and the optimizer's state stay
    float32. mmengine's ``AmpOptimWrapper`` asserts a GPU (or NPU, MLU,
    MUSA) because it is built around float16 and its ``GradScaler``; bfloat16
    has float32's exponent range, so gradients neither underflow nor need a
    loss scale, and a CPU with AVX-512 BF16 or AMX runs it about twice as
    fast (one without native bfloat16 runs it many times slower:
    :func:`cpu_runs_bf16_natively`). ``tools/train.py --amp`` picks this
    wrapper where no GPU is present and ``AmpOptimWrapper`` (float16) where
    one is.

    Args:
        **kwargs: Keyword arguments of :class:`mmengine.optim.OptimWrapper`
            (``optimizer``, ``accumulative_counts``, ``clip_grad``).
    """

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """Autocast the forward in bfloat16, inside ``OptimWrapper``'s
        context (which skips gradient synchronisation while gradients
        accumulate)."""
        with super().optim_context(model), autocast(dtype=torch.bfloat16):
            yield

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the optimizer's state, also from an ``AmpOptimWrapper``
        checkpoint (a run started in float16 on a GPU resumes here): its
        loss scale has no use in bfloat16 and is dropped."""
        state_dict = dict(state_dict)
        state_dict.pop('loss_scaler', None)
        super().load_state_dict(state_dict)
