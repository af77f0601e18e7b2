"""Resume mmengine checkpoints with PyTorch's weights-only loader kept on.

Since PyTorch 2.6 ``torch.load`` only unpickles allow-listed types. An
mmengine checkpoint stores its message hub (``HistoryBuffer`` objects holding
numpy arrays), so ``--resume`` and ``load_from`` fail. Setting
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` would turn the safe loader off for every
file, downloaded ones included. Instead we allow-list exactly the plain data
types that mmengine itself writes. The one function among them, the
``getattr`` that pickles ``HistoryBuffer``'s statistics methods, is replaced
by a version that resolves only those methods and refuses anything else.
"""
import pickle

import numpy as np
import torch


def _numpy_globals() -> list:
    types_ = [np.ndarray, np.dtype]
    # Scalars and arrays are pickled through these reconstructors; their
    # module moved from ``numpy.core`` to ``numpy._core`` in numpy 2.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    types_ += [multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes as instances of per-type classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types_ += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return types_


_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner, name: str):
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods."""
    from mmengine.logging import HistoryBuffer
    if owner is HistoryBuffer:
        # The built-in methods are registered on first instantiation only.
        if name in _BUILTIN_STATISTICS:
            return getattr(HistoryBuffer, name)
        if name in HistoryBuffer._statistics_methods:
            return HistoryBuffer._statistics_methods[name]
    raise pickle.UnpicklingError(
        f'Refusing getattr({owner!r}, {name!r}) while loading a checkpoint: '
        f'only the statistics methods of mmengine HistoryBuffer are allowed.')


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list the types mmengine writes into its checkpoints."""
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:  # torch < 2.4 has no weights-only default
        return
    from mmengine.logging import HistoryBuffer
    restricted_getattr = [(_history_buffer_method, f'{module}.getattr')
                          for module in ('builtins', '__builtin__')]
    add_safe_globals(
        [HistoryBuffer, *_numpy_globals(), *restricted_getattr])


def load_urls_weights_only() -> None:
    """Download checkpoints with the weights-only loader too.

    mmengine fetches ``http(s)://``, ``torchvision://`` and
    ``open-mmlab://`` checkpoints with ``torch.hub.load_state_dict_from_url``,
    whose ``weights_only`` defaults to False: a downloaded file could run
    code while it is unpickled, where a local file could not. mmengine's
    loaders look ``load_url`` up at call time, so it is replaced by the same
    download with ``weights_only=True``.
    """
    import inspect

    from mmengine.runner import checkpoint
    download = torch.hub.load_state_dict_from_url
    if getattr(checkpoint.load_url, 'weights_only', False) or \
            'weights_only' not in inspect.signature(download).parameters:
        return

    def load_url(url, *args, **kwargs):
        kwargs['weights_only'] = True
        return download(url, *args, **kwargs)

    load_url.weights_only = True
    checkpoint.load_url = load_url
