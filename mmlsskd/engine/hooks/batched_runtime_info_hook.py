from typing import List, Optional

import torch
from mmengine.hooks import LoggerHook, RuntimeInfoHook
from mmpretrain.registry import HOOKS


def logger_interval(runner) -> int:
    """The steps at which the run's ``LoggerHook`` reads the message hub
    (every step without one)."""
    loggers = [h for h in runner.hooks if isinstance(h, LoggerHook)]
    return loggers[0].interval if loggers else 1


@HOOKS.register_module()
class BatchedRuntimeInfoHook(RuntimeInfoHook):
    """mmengine's ``RuntimeInfoHook``, reading the loss scalars from the
    device once per logging window instead of once per loss per step.

    mmengine's hook writes every step's log variables into the message hub
    at once, and the hub converts each tensor with ``.item()``: on a GPU every
    loss term of every step waits for the whole step to finish, which keeps
    the host from queueing the next one. This hook keeps the step's scalar
    tensors on the device, and every ``interval`` steps of an epoch (and at
    its end) copies them to the host in one transfer and writes them into the
    hub in order, so that the logger, which reads the hub at the same steps,
    logs exactly what mmengine's hook would have given it.

    Use it in place of the default: ``default_hooks =
    dict(runtime_info=dict(type='BatchedRuntimeInfoHook'))``.

    Args:
        interval (int, optional): Steps between transfers. None takes the
            ``LoggerHook``'s interval, the steps at which it reads the hub.
            Defaults to None.
    """

    def __init__(self, interval: Optional[int] = None) -> None:
        if interval is not None and (not isinstance(interval, int)
                                     or interval < 1):
            raise ValueError(
                f'BatchedRuntimeInfoHook.interval must be a positive int or '
                f'None (the logger interval), got {interval!r}.')
        self.interval = interval
        self._pending: List[dict] = []

    def before_train(self, runner) -> None:
        """Take the logger's interval unless one was given."""
        super().before_train(runner)
        if self.interval is None:
            self.interval = logger_interval(runner)
        self._pending = []

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Keep the step's scalars; write the window into the hub at the
        logger's steps and at the end of the epoch."""
        if outputs is not None:
            self._pending.append({
                key: value.detach() if isinstance(value, torch.Tensor) else
                value
                for key, value in outputs.items()
            })
        # The logger counts steps within the epoch (every_n_inner_iters).
        if (self.every_n_inner_iters(batch_idx, self.interval)
                or self.end_of_epoch(runner.train_dataloader, batch_idx)):
            self.flush(runner)

    def after_train(self, runner) -> None:
        """Write whatever a stopped loop left pending."""
        self.flush(runner)
        super().after_train(runner)

    def flush(self, runner) -> None:
        """Copy the pending scalars to the host in one transfer and write
        them into the message hub, step by step."""
        pending, self._pending = self._pending, []
        tensors = [(i, key, value) for i, outputs in enumerate(pending)
                   for key, value in outputs.items()
                   if isinstance(value, torch.Tensor)]
        if tensors:
            host = torch.stack([
                value.reshape(()).float()
                for _, _, value in tensors
            ]).cpu().tolist()
            for (i, key, _), number in zip(tensors, host):
                pending[i][key] = number
        for outputs in pending:
            for key, value in outputs.items():
                runner.message_hub.update_scalar(f'train/{key}', value)
