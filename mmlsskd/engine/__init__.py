from .hooks import PastPredictionHook
from .past_prediction_store import PastPredictions, PastPredictionStore

__all__ = ['PastPredictionHook', 'PastPredictionStore', 'PastPredictions']
