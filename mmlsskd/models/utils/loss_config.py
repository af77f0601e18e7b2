"""Checks of the loss settings a model is built with."""
import difflib
import math
from typing import Optional

from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from ...utils.errors import config_error


def check_loss_cfg(subject: str, cfg: Optional[dict],
                   optional: bool = False) -> None:
    """A loss config: a registered type, ``loss_weight >= 0``, ``tau > 0``.

    Args:
        subject (str): The config key, e.g. ``'aux_head.loss_kl'``.
        cfg (dict, optional): The loss config.
        optional (bool): Whether None (drop the term) is allowed.
    """
    if cfg is None and optional:
        return
    if not isinstance(cfg, dict) or 'type' not in cfg:
        fix = ('Give a loss config such as dict(type='
               "'CrossEntropyLoss', use_soft=True)")
        raise config_error(subject, f'expected a loss config with a type, '
                           f'got {cfg!r}', fix + (
                               ', or None to drop the term.'
                               if optional else '.'))
    name = cfg['type']
    if isinstance(name, str):
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            found = MODELS.get(name)
        if found is None:
            known = _registered_losses()
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = (f'Did you mean {", ".join(repr(c) for c in close)}?'
                    if close else
                    "Use an mmpretrain loss (e.g. 'CrossEntropyLoss') or an "
                    "mmrazor one with its prefix (e.g. "
                    "'mmrazor.KLDivergence').")
            raise config_error(subject, f'unknown loss type {name!r}', hint)
    weight = cfg.get('loss_weight', 1.0)
    if not isinstance(weight, (int, float)) or weight < 0 or \
            not math.isfinite(weight):
        raise config_error(
            subject, f'loss_weight must be a finite number >= 0, got '
            f'{weight!r}', 'A negative weight would maximise the loss; '
            'use 0 or None to switch the term off.')
    if 'tau' in cfg and not (isinstance(cfg['tau'], (int, float))
                             and cfg['tau'] > 0):
        raise config_error(
            subject, f"temperature tau must be > 0, got {cfg['tau']!r}",
            'HSSAKD and LSSKD use tau=3.0.')


def _registered_losses() -> list:
    """Loss-like names: mmpretrain's bare, other scopes' with a prefix."""

    def losses(registry):
        return [
            n for n in registry.module_dict
            if any(w in n for w in ('Loss', 'KL', 'Divergence'))
        ]

    root = MODELS
    while root.parent is not None:
        root = root.parent
    names = losses(MODELS)
    for scope, registry in root.children.items():
        if registry is not MODELS:
            names += [f'{scope}.{n}' for n in losses(registry)]
    return names
