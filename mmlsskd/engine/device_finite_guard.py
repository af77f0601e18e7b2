"""Keep non-finite losses out of the weights without reading them on the
host in every step."""
from typing import Dict, List, Optional

import torch
from torch.optim import Optimizer

from mmengine.dist import all_reduce, get_world_size

from ..utils.errors import config_error
from ..models.utils.finite_losses import check_finite_losses

# The optimizers whose fused kernels skip their update on the device when
# given ``found_inf`` (what torch's GradScaler relies on).
FUSED_WITH_FOUND_INF = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def check_fused_optimizer(optimizer: Optimizer) -> None:
    """``finite_check='device'`` needs an optimizer that can skip a step on
    the device."""
    fix = ("Set optim_wrapper.optimizer.fused=True (SGD, Adam or AdamW), or "
           "use PastPredictionHook(finite_check='step').")
    if not isinstance(optimizer, FUSED_WITH_FOUND_INF) or \
            not optimizer.defaults.get('fused'):
        raise config_error(
            'PastPredictionHook.finite_check', f"'device' skips a step with a "
            f'non-finite loss inside a fused optimizer, but the optimizer is '
            f'{type(optimizer).__name__} with fused='
            f'{optimizer.defaults.get("fused")}', fix)
    if isinstance(optimizer, torch.optim.SGD) and \
            optimizer.defaults.get('dampening', 0) != 0:
        raise config_error(
            'PastPredictionHook.finite_check', "'device' starts SGD's "
            'momentum buffers at zero, which equals torch\'s first step only '
            'without dampening', 'Set dampening=0, or use '
            "finite_check='step'.")


class DeviceFiniteGuard:
    """Skip optimizer steps whose loss is not finite, on the device.

    Before every optimizer step it computes, on the device, whether every
    loss term of the step is finite, and hands the answer to the fused
    optimizer as ``found_inf``, so that the kernel leaves the weights and
    its state alone when it is not; the past-prediction store writes the
    step's rows only when it is (:attr:`valid`). The first bad step's
    iteration and term values stay on the device until :meth:`raise_if_bad`
    reads them, once per logging window and before every checkpoint.

    torch (2.x) leaves a fused SGD's new momentum buffers uninitialised when
    it skips the very first step; :meth:`attach` starts them at zero, which
    is what the first step computes anyway when ``dampening`` is 0.
    """

    def __init__(self) -> None:
        self.valid: Optional[torch.Tensor] = None
        self._names: List[str] = []
        self._bad_iter: Optional[torch.Tensor] = None
        self._bad_values: Optional[torch.Tensor] = None
        # Whether a step since the last optimizer step (gradient
        # accumulation) had a non-finite loss: its gradients are summed in.
        self._pending_bad: Optional[torch.Tensor] = None

    @staticmethod
    def attach(optimizer: Optimizer) -> None:
        """Check the optimizer and give SGD zero momentum buffers."""
        check_fused_optimizer(optimizer)
        if isinstance(optimizer, torch.optim.SGD):
            for group in optimizer.param_groups:
                if not group.get('momentum'):
                    continue
                for p in group['params']:
                    state = optimizer.state[p]
                    if state.get('momentum_buffer') is None:
                        state['momentum_buffer'] = torch.zeros_like(
                            p, memory_format=torch.preserve_format)

    def observe(self, losses: Dict[str, torch.Tensor],
                iteration: int) -> torch.Tensor:
        """Record, on the device, whether a step's losses are finite (on
        every rank) and, if it is the first bad step, which and where.

        Returns:
            torch.Tensor: The step's verdict, a 0-dim bool; also
            :attr:`valid`, for the store update.
        """
        names = [name for name in losses if name.startswith('loss')]
        values = torch.stack(
            [losses[name].detach().float().reshape(()) for name in names])
        bad = (~torch.isfinite(values).all()).float()
        if get_world_size() > 1:
            # Every rank must skip the same steps, or their weights part.
            all_reduce(bad, op='max')
        ok = bad == 0
        self.valid = ok
        self._pending_bad = (~ok if self._pending_bad is None else
                             self._pending_bad | ~ok)
        if self._bad_iter is None or names != self._names:
            self._names = names
            self._bad_iter = torch.full((), -1, device=values.device)
            self._bad_values = torch.zeros_like(values)
        first = (~ok) & (self._bad_iter < 0)
        self._bad_iter = torch.where(
            first, torch.full((), iteration, device=values.device),
            self._bad_iter)
        self._bad_values = torch.where(first, values, self._bad_values)
        return ok

    def before_step(self, optimizer: Optimizer,
                    losses: Optional[Dict[str, torch.Tensor]],
                    iteration: int) -> None:
        """Tell the optimizer whether the losses since its last step were
        all finite (``losses``: this step's, None if already observed)."""
        if losses is not None:
            self.observe(losses, iteration)
        if self._pending_bad is None:
            return
        skip, self._pending_bad = self._pending_bad.float(), None
        found = getattr(optimizer, 'found_inf', None)  # GradScaler's
        optimizer.found_inf = skip if found is None else torch.maximum(
            found.float(), skip.to(found.device))

    @staticmethod
    def after_step(optimizer: Optimizer) -> None:
        """Take ``found_inf`` off again (GradScaler sets its own)."""
        if hasattr(optimizer, 'found_inf'):
            del optimizer.found_inf

    def raise_if_bad(self, context) -> None:
        """Stop if a step since training started had a non-finite loss.

        Args:
            context (Callable[[int], str]): Describes where the bad step
                (its 0-based iteration) happened.

        Raises:
            NonFiniteLossError: Naming the terms and the step.
        """
        if self._bad_iter is None:
            return
        iteration = int(self._bad_iter)  # the one host read
        if iteration < 0:
            return
        losses = dict(zip(self._names, self._bad_values.unbind()))
        check_finite_losses(losses, context(iteration))
