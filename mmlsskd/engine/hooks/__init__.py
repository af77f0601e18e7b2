from .past_prediction_hook import PastPredictionHook

__all__ = ['PastPredictionHook']
