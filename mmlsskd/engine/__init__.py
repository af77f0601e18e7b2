from .hooks import (AtomicCheckpointHook, BatchedRuntimeInfoHook,
                    CheckpointFitHook, EpochSeedHook, PastPredictionHook)
from .past_prediction_store import PastPredictions, PastPredictionStore

__all__ = [
    'AtomicCheckpointHook', 'BatchedRuntimeInfoHook', 'CheckpointFitHook',
    'EpochSeedHook', 'PastPredictionHook', 'PastPredictionStore',
    'PastPredictions'
]
