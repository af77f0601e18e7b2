from .hooks import AtomicCheckpointHook, PastPredictionHook
from .past_prediction_store import PastPredictions, PastPredictionStore

__all__ = [
    'AtomicCheckpointHook', 'PastPredictionHook', 'PastPredictionStore',
    'PastPredictions'
]
