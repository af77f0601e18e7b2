from .cpu_allocator import reuse_freed_heap_memory
from .distributed import destroy_process_group, setup_cpu_distributed
from .mmrazor_compat import patch_mmrazor_quantization
from .openmmlab_package import register_config_package, register_model_index
from .refusals import refusals_without_traceback
from .safe_checkpoint import (allow_mmengine_checkpoint_types,
                              load_urls_weights_only)
from .errors import (CheckpointWriteError, LSSKDCheckpointError,
                     LSSKDConfigError, NonFiniteLossError)
from .work_dir_lock import WorkDirInUseError, WorkDirLock, lock_work_dir

__all__ = [
    'CheckpointWriteError', 'LSSKDCheckpointError', 'LSSKDConfigError',
    'NonFiniteLossError', 'WorkDirInUseError', 'WorkDirLock',
    'allow_mmengine_checkpoint_types', 'destroy_process_group',
    'load_urls_weights_only', 'lock_work_dir', 'patch_mmrazor_quantization',
    'refusals_without_traceback', 'register_config_package',
    'register_model_index', 'reuse_freed_heap_memory',
    'setup_cpu_distributed'
]
