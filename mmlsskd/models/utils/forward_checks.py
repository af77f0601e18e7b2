"""Name the module and the setting when a wrapped classifier's parts do not
fit together: at build time for a backbone's settings, before the first
step for shapes (a dry run on one batch)."""
import inspect
import os
import traceback
from typing import Callable, Optional, Sequence

import torch
from mmpretrain.registry import MODELS

from ...utils.errors import LSSKDConfigError, config_error


def describe_shapes(features) -> str:
    """``'(2, 64, 8, 8), (2, 128, 4, 4)'`` for a tensor or a sequence."""
    if torch.is_tensor(features):
        return str(tuple(features.shape))
    return ', '.join(describe_shapes(f) for f in features)


def backbone_settings_error(
        backbone: dict,
        error: AssertionError,
        branch_out_indices: Optional[Sequence[int]] = None
) -> LSSKDConfigError:
    """The project's message for a backbone that refused its settings with
    a bare ``assert``.

    Args:
        backbone (dict): The backbone config as the classifier writes it.
        error (AssertionError): What the backbone raised.
        branch_out_indices (Sequence[int], optional): ``LSSKD.out_indices``
            when the config gives them, to be fixed in the same message.
    """
    kind = backbone.get('type', 'the backbone')
    detail = str(error) or 'an assertion in its __init__ failed'
    out_indices = backbone.get('out_indices')
    default = ''
    if out_indices is None:  # the backbone's default, e.g. ResNet's (3, )
        cls = MODELS.get(kind) if isinstance(kind, str) else None
        out_indices = _default_argument(cls, 'out_indices')
        default = ' (its default)'
    stages = backbone.get('num_stages')
    if out_indices is not None and stages is not None and \
            max(out_indices) >= stages:
        fix = (f'Set model.architecture.backbone.out_indices='
               f'({stages - 1},), its last stage, for the classifier')
        if branch_out_indices is not None and \
                max(branch_out_indices) >= stages:
            fix += (f', and model.out_indices={tuple(range(stages))} for the '
                    f'branches (or leave model.out_indices out)')
        return config_error(
            'model.architecture.backbone.out_indices',
            f'{tuple(out_indices)}{default} names stage {max(out_indices)}, '
            f'but {kind} has num_stages={stages} (stages 0..{stages - 1})',
            fix + '.')
    fix = ('Check out_indices against its number of stages, and its other '
           'settings against its documentation.'
           if out_indices is not None else
           'Check its settings against its documentation.')
    return config_error('model.architecture.backbone',
                        f'{kind} refused its settings ({detail})', fix)


def build_settings_error(backbone: dict,
                         error: AssertionError) -> LSSKDConfigError:
    """The message for a bare ``assert`` that failed while the wrapped
    classifier was built: the backbone's (:func:`backbone_settings_error`)
    when its code raised it, else one naming the class that did (e.g.
    ``RandomBatchAugment``), so no other part's assert is blamed on the
    backbone."""
    frames = traceback.extract_tb(error.__traceback__)
    if any(f'{os.sep}backbones{os.sep}' in f.filename for f in frames):
        return backbone_settings_error(backbone, error)
    tb = error.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    owner = tb.tb_frame.f_locals.get('self')
    component = type(owner).__name__ if owner is not None else \
        frames[-1].name
    return config_error(
        'model', f'{component} refused its settings ({error})',
        f'Check the settings of {component} in the config against its '
        f'documentation.')


def _default_argument(cls, name: str):
    """The default of ``cls``'s argument ``name``, looked up through its
    bases' ``__init__`` (``ResNet_CIFAR`` passes ``**kwargs`` to
    ``ResNet``); None if there is none."""
    for klass in getattr(cls, '__mro__', ()):
        if '__init__' in vars(klass):
            parameter = inspect.signature(klass.__init__).parameters.get(name)
            if parameter is not None and \
                    parameter.default is not inspect.Parameter.empty:
                return parameter.default
    return None


def head_fix(head, features) -> str:
    """How to make ``head`` take ``features``."""
    last = features[-1] if isinstance(features, (tuple, list)) else features
    if torch.is_tensor(last) and last.dim() > 2:
        return ("The head takes (N, C) features: pool the feature map with "
                "neck=dict(type='GlobalAveragePooling').")
    channels = getattr(head, 'in_channels', None)
    if torch.is_tensor(last) and channels is not None and \
            channels != last.shape[-1]:
        return (f'Set head in_channels={last.shape[-1]} (it is '
                f'{channels}).')
    return 'Make the head take what it receives.'


def run_named(subject: str, module: Callable, features, source: str,
              fix: Optional[str] = None):
    """``module(features)``; a shape error becomes the project's message,
    naming ``subject`` and what it received from ``source``."""
    try:
        return module(features)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error) else \
            type(error).__name__
        raise config_error(
            subject, f'fails on what {source}, {describe_shapes(features)} '
            f'({first_line})', fix or 'Make it take what it receives.'
        ) from error
