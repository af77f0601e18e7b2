"""Make ``mmrazor`` 1.0.0 importable on PyTorch >= 2.

mmrazor builds its quantization backend configs at import time from
PyTorch 1.13 names, so ``import mmrazor.models`` fails on newer PyTorch
("torch>=1.13 is not installed properly", upstream issues 615/632). LSSKD
uses mmrazor's algorithm base and losses, never its quantization, so the
smallest fix is to register a stand-in for that one module before mmrazor is
imported. Quantization stays unavailable and says so when asked for.
"""
import sys
import types

_BACKEND_CONFIG_MODULE = 'mmrazor.structures.quantization.backend_config'
_BACKENDS = ('native', 'academic', 'openvino', 'tensorrt')


def _unavailable(*args, **kwargs):
    raise RuntimeError(
        'mmrazor quantization is unavailable in mmlsskd: its backend configs '
        'need PyTorch 1.13 APIs. Install torch 1.13 in a separate '
        'environment to quantize.')


def _build_stub() -> types.ModuleType:
    stub = types.ModuleType(_BACKEND_CONFIG_MODULE)
    stub.__doc__ = 'Stand-in registered by mmlsskd.utils.mmrazor_compat.'
    stub.BackendConfigs = {name: None for name in _BACKENDS}
    names = ['BackendConfigs']
    for backend in _BACKENDS:
        for suffix in ('', '_dict'):
            name = f'get_{backend}_backend_config{suffix}'
            setattr(stub, name, _unavailable)
            names.append(name)
    stub.__all__ = names
    return stub


def patch_mmrazor_quantization() -> None:
    """Register the stand-in unless mmrazor's own module already loaded."""
    if _BACKEND_CONFIG_MODULE in sys.modules:
        return
    import torch
    major = int(torch.__version__.split('.')[0])
    if major < 2:
        return  # mmrazor's own module works on the torch it was written for
    sys.modules[_BACKEND_CONFIG_MODULE] = _build_stub()
