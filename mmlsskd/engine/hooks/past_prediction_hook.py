from typing import Optional

import torch
from mmengine.dist import all_gather, get_world_size
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ..past_prediction_store import PastPredictionStore

CHECKPOINT_KEY = 'lsskd_past_predictions'


@HOOKS.register_module()
class PastPredictionHook(Hook):
    """Keep last epoch's predictions and ramp how much LSSKD trusts them.

    The hook owns the :class:`PastPredictionStore` of an LSSKD run. Before
    training it sizes the store for the training set and hands it to the
    algorithm, which reads each batch's past predictions to build the
    progressive soft targets. Before every epoch it sets
    ``alpha_t = alpha_T * t / T`` (PS-KD's linear ramp, ``t`` the 0-based
    epoch, ``T`` the number of epochs). After every step it writes the step's
    detached predictions into the store, gathered from every rank so each
    rank can look up any sample next epoch. The store is saved in every
    checkpoint under ``'lsskd_past_predictions'`` and restored on resume.

    Args:
        alpha_T (float): The weight of the past prediction in the last epoch.
            Defaults to 0.8, the value of PS-KD.
    """

    priority = 'NORMAL'

    def __init__(self, alpha_T: float = 0.8) -> None:
        if not 0.0 <= alpha_T <= 1.0:
            raise ValueError(
                f'alpha_T is the weight of the past prediction in the soft '
                f'target and must lie in [0, 1], got {alpha_T}.')
        self.alpha_T = alpha_T
        self.store: Optional[PastPredictionStore] = None
        self._resumed_state: Optional[dict] = None

    @staticmethod
    def _algorithm(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if not hasattr(model, 'attach_past_predictions'):
            raise TypeError(
                f'PastPredictionHook works with the LSSKD algorithm, but the '
                f'model is a {type(model).__name__}. Remove the hook or wrap '
                f"the classifier: model=dict(type='LSSKD', architecture=...).")
        return model

    def before_train(self, runner) -> None:
        """Build the store, restore a resumed one, attach it to the model."""
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError(
                'PastPredictionHook keeps one prediction per sample per '
                'epoch and needs an epoch-based loop: set '
                'train_cfg=dict(by_epoch=True, max_epochs=...).')
        algorithm = self._algorithm(runner)
        self.store = PastPredictionStore(
            num_samples=len(runner.train_dataloader.dataset),
            num_classes=algorithm.num_classes,
            num_views=algorithm.num_views,
            num_branches=algorithm.num_branches)
        if self._resumed_state is not None:
            self.store.load_state_dict(self._resumed_state)
            self._resumed_state = None
            runner.logger.info('Restored the past-prediction store.')
        algorithm.attach_past_predictions(self.store)

    def before_train_epoch(self, runner) -> None:
        """Set this epoch's ``alpha_t`` on the algorithm."""
        alpha = self.alpha_T * runner.epoch / runner.max_epochs
        self._algorithm(runner).alpha = alpha
        runner.message_hub.update_scalar('train/alpha', alpha)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Write the step's predictions, from every rank, into the store."""
        indices, final, branches = \
            self._algorithm(runner).pop_step_predictions()
        if get_world_size() > 1:
            # Every rank sees other samples next epoch: keep the full store on
            # each rank. Branch SADs are sample-major, so they concatenate.
            indices = torch.cat(all_gather(indices))
            final = torch.cat(all_gather(final))
            branches = torch.cat(all_gather(branches), dim=1)
        self.store.update(indices, final, branches, runner.epoch)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the store with the checkpoint."""
        if self.store is not None:
            checkpoint[CHECKPOINT_KEY] = self.store.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the store on resume (``load_from`` starts a fresh one)."""
        state = checkpoint.get(CHECKPOINT_KEY)
        if not getattr(runner, '_resume', False):
            return
        if state is None:
            raise KeyError(
                f'The checkpoint being resumed has no '
                f"'{CHECKPOINT_KEY}', so LSSKD's past predictions would "
                f'restart empty. Resume from a checkpoint saved by an LSSKD '
                f'run, or use load_from to start from its weights alone.')
        if self.store is None:  # resume runs before before_train
            self._resumed_state = state
        else:
            self.store.load_state_dict(state)
