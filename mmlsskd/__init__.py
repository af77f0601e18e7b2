"""LSSKD, Layered Self-Supervised Knowledge Distillation, for OpenMMLab."""
from .utils import (allow_mmengine_checkpoint_types, load_urls_weights_only,
                    patch_mmrazor_quantization, register_config_package,
                    register_model_index)

# These must run before anything imports mmrazor or loads a checkpoint.
patch_mmrazor_quantization()
allow_mmengine_checkpoint_types()
load_urls_weights_only()
# `mmlsskd::` configs, and the shipped configs in mmpretrain's model hub.
register_config_package()
register_model_index()

from .datasets import *  # noqa: F401,F403,E402
from .structures import *  # noqa: F401,F403,E402
from .engine import *  # noqa: F401,F403,E402
from .evaluation import *  # noqa: F401,F403,E402
from .models import *  # noqa: F401,F403,E402
from .version import __version__  # noqa: E402

__all__ = ['__version__']
