from .past_predictions import PastPredictions

__all__ = ['PastPredictions']
