from .hooks import (AtomicCheckpointHook, BatchedRuntimeInfoHook,
                    CheckpointFitHook, EpochSeedHook, PastPredictionHook)
from .optimizers import BF16AmpOptimWrapper
from .past_prediction_store import PastPredictions, PastPredictionStore

__all__ = [
    'AtomicCheckpointHook', 'BatchedRuntimeInfoHook', 'BF16AmpOptimWrapper',
    'CheckpointFitHook', 'EpochSeedHook', 'PastPredictionHook',
    'PastPredictionStore', 'PastPredictions'
]
