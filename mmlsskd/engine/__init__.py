from .hooks import AtomicCheckpointHook, EpochSeedHook, PastPredictionHook
from .past_prediction_store import PastPredictions, PastPredictionStore

__all__ = [
    'AtomicCheckpointHook', 'EpochSeedHook', 'PastPredictionHook',
    'PastPredictionStore', 'PastPredictions'
]
