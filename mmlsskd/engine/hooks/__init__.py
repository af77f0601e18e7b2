from .atomic_checkpoint_hook import AtomicCheckpointHook
from .epoch_seed_hook import EpochSeedHook
from .past_prediction_hook import PastPredictionHook

__all__ = ['AtomicCheckpointHook', 'EpochSeedHook', 'PastPredictionHook']
