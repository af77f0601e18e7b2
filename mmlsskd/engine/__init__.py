from .hooks import (AtomicCheckpointHook, BatchedRuntimeInfoHook,
                    EpochSeedHook, PastPredictionHook)
from .past_prediction_store import PastPredictions, PastPredictionStore

__all__ = [
    'AtomicCheckpointHook', 'BatchedRuntimeInfoHook', 'EpochSeedHook',
    'PastPredictionHook', 'PastPredictionStore', 'PastPredictions'
]
