from .atomic_checkpoint_hook import AtomicCheckpointHook
from .past_prediction_hook import PastPredictionHook

__all__ = ['AtomicCheckpointHook', 'PastPredictionHook']
