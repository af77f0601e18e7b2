"""The host check that keeps a non-finite loss out of the weights."""
import math
from typing import Dict

import torch

from ...utils.errors import NonFiniteLossError, refusal_message


def check_finite_losses(losses: Dict[str, torch.Tensor],
                        context: str) -> None:
    """Stop before a NaN or infinite loss reaches the weights or store.

    Args:
        losses (dict[str, torch.Tensor]): The parsed loss terms.
        context (str): Where training is (step, last checkpoint).
    """
    total = losses.get('loss')
    # A sum is finite only if every term is: one operation and one
    # device-to-host read in the common case, the terms only on failure.
    if torch.is_tensor(total) and bool(torch.isfinite(total)):
        return
    names = [name for name in losses if name.startswith('loss')]
    values = torch.stack(
        [losses[name].detach().float().reshape(()) for name in names])
    if bool(torch.isfinite(values).all()):
        return
    bad = [n for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
    if len(bad) > 1 and 'loss' in bad:
        bad.remove('loss')  # the total is non-finite because a term is
    if bad:
        raise NonFiniteLossError(
            refusal_message(
                'training stopped', f'{", ".join(bad)} became non-finite '
                f'at {context}; no weight and no past prediction was '
                f'updated with it', 'Resume from the last good checkpoint '
                'with a lower learning rate (or --amp off), or check the '
                'inputs of this step.'))
