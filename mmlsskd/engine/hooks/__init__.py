from .atomic_checkpoint_hook import AtomicCheckpointHook
from .batched_runtime_info_hook import BatchedRuntimeInfoHook
from .checkpoint_fit_hook import CheckpointFitHook
from .epoch_seed_hook import EpochSeedHook
from .past_prediction_hook import PastPredictionHook

__all__ = [
    'AtomicCheckpointHook', 'BatchedRuntimeInfoHook', 'CheckpointFitHook',
    'EpochSeedHook', 'PastPredictionHook'
]
