from typing import Optional

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import all_gather, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.optim import OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop, find_latest_checkpoint
from mmpretrain.registry import HOOKS

from ...datasets.training_set_checks import (check_dataset_fits,
                                             check_labels,
                                             check_sample_index_space,
                                             check_steps_per_epoch,
                                             sample_index_space)
from ...utils.checkpoint_checks import (check_checkpoint_file,
                                        check_ends_an_epoch,
                                        check_loaded_weights,
                                        checkpoint_state_dict,
                                        latest_checkpoint, schedule_changes,
                                        unwrap_model)
from ...utils.errors import (LSSKDCheckpointError, check_unit_interval,
                             config_error)
from ..checkpoint_space import check_checkpoint_space
from ..device_finite_guard import DeviceFiniteGuard
from ..past_prediction_store import (PastPredictionStore,
                                     check_store_options, store_device)
from ..sample_index_check import SampleIndexCheck
from ..training_set_fingerprint import training_set_fingerprint
from .batched_runtime_info_hook import logger_interval

CHECKPOINT_KEY = 'lsskd_past_predictions'
FINGERPRINT_KEY = 'lsskd_training_set'


def _optim_wrappers(runner) -> list:
    """The run's optimizer wrappers (one, or those of an OptimWrapperDict)."""
    wrappers = runner.optim_wrapper
    return list(wrappers.values()) if isinstance(
        wrappers, OptimWrapperDict) else [wrappers]


@HOOKS.register_module()
class PastPredictionHook(Hook):
    """Keep last epoch's predictions and ramp how much LSSKD trusts them.

    The hook owns the :class:`PastPredictionStore` of an LSSKD run. Before
    training it sizes the store for the training set and hands it to the
    algorithm, which reads each batch's past predictions to build the
    progressive soft targets. Before every epoch it sets
    ``alpha_t = alpha_T * (t + 1) / T`` (PS-KD's linear ramp as its code
    computes it, ``t`` the 0-based epoch, ``T`` the number of epochs, so the
    last epoch uses ``alpha_T``; the first epoch has no past prediction and
    trains on the label). After every step it writes the step's
    detached predictions into the store, gathered from every rank so each
    rank can look up any sample next epoch. The store is saved in every
    checkpoint under ``'lsskd_past_predictions'``, with a fingerprint of the
    training set it indexes (``'lsskd_training_set'``), and restored on
    resume after three checks: the fingerprint matches this run's training
    set, every row is a distribution, and the checkpoint ends an epoch (the
    epoch loop restarts a resumed epoch from its first batch).
    It also runs the algorithm's NaN check before every optimizer step and
    every store update, so that a non-finite loss reaches neither.

    Args:
        alpha_T (float): The weight of the past prediction in the last epoch.
            Defaults to 0.8, the value of PS-KD.
        store (dict, optional): How the store keeps its rows: ``dtype``
            (``'float32'``, ``'float16'``, ``'bfloat16'``), ``topk`` (keep
            the k largest probabilities of every row), ``branch_views``
            (``'all'`` or ``'unrotated'``) and ``device`` (``'cpu'``,
            ``'pinned'``, ``'cuda'``, or ``'auto'``: on the model's GPU when
            the store takes at most a quarter of its free memory, else in
            pinned host memory, and in host memory without a GPU); see
            :class:`PastPredictionStore`. Defaults to dense float32, every
            view, ``device='auto'``.
        finite_check (str): How a non-finite loss is kept out of the
            weights and the store. ``'step'``: the loss terms are read on
            the host before every optimizer step, and training stops there
            (one device-to-host wait per step on a GPU). ``'device'``: the
            check stays on the device; a fused optimizer
            (``optim_wrapper.optimizer.fused=True``) skips the step and the
            store writes nothing for it, and training stops at the next
            read, once per ``check_interval`` steps and before every
            checkpoint, naming the first bad step. Defaults to ``'step'``.
        check_interval (int, optional): Steps between the host reads of
            ``finite_check='device'``. None takes the logger's interval,
            where the loss scalars are read anyway. Defaults to None.
    """

    priority = 'NORMAL'

    def __init__(self,
                 alpha_T: float = 0.8,
                 store: Optional[dict] = None,
                 finite_check: str = 'step',
                 check_interval: Optional[int] = None) -> None:
        check_unit_interval('PastPredictionHook.alpha_T', alpha_T)
        if finite_check not in ('step', 'device'):
            raise config_error(
                'PastPredictionHook.finite_check', f"must be 'step' or "
                f"'device', got {finite_check!r}", "'device' keeps the check "
                'off the host, with a fused optimizer.')
        if check_interval is not None and (not isinstance(
                check_interval, int) or check_interval < 1):
            raise config_error(
                'PastPredictionHook.check_interval', f'must be a positive '
                f'int or None, got {check_interval!r}',
                "None reads at the logger's interval.")
        self.finite_check = finite_check
        self.check_interval = check_interval
        self._guard = DeviceFiniteGuard() if finite_check == 'device' \
            else None
        self.store_options = dict(store or {})
        unknown = set(self.store_options) - {
            'dtype', 'topk', 'branch_views', 'device'
        }
        if unknown:
            raise config_error(
                'PastPredictionHook.store', f'unknown keys {sorted(unknown)}',
                'Use dtype, topk, branch_views and device.')
        self.store_options.setdefault('device', 'auto')
        check_store_options(
            self.store_options.get('dtype', 'float32'),
            self.store_options.get('topk'),
            self.store_options.get('branch_views', 'all'),
            self.store_options['device'])
        self.alpha_T = alpha_T
        self.store: Optional[PastPredictionStore] = None
        self._index_check: Optional[SampleIndexCheck] = None
        self._resumed_state: Optional[dict] = None
        self._resumed_fingerprint: Optional[dict] = None
        self.fingerprint: Optional[dict] = None
        self._step_hook_handles = []

    @staticmethod
    def _algorithm(runner):
        model = unwrap_model(runner.model)
        if not hasattr(model, 'attach_past_predictions'):
            raise config_error(
                'custom_hooks', f'PastPredictionHook works with LSSKD or '
                f'PS-KD, but the model is a {type(model).__name__}',
                "Remove the hook or wrap the classifier: model=dict("
                "type='LSSKD', architecture=...).")
        return model

    def before_run(self, runner) -> None:
        """Check the hooks, and the checkpoint to resume or load, before
        anything runs."""
        self._check_hooks(runner)
        self._resolve_resume(runner)
        path, purpose = self._checkpoint_to_load(runner)
        if path is not None:
            check_checkpoint_file(path, purpose)

    @staticmethod
    def _check_hooks(runner) -> None:
        """One store, checkpoints that an interrupted write cannot lose, and
        epochs reseeded so that a resume is exact."""
        own = [h for h in runner.hooks if isinstance(h, PastPredictionHook)]
        if len(own) > 1:
            raise config_error(
                'custom_hooks', f'{len(own)} PastPredictionHooks, and every '
                f'one would keep its own store and write every step into it',
                'Keep one (the shipped LSSKD and PS-KD configs add it: '
                'extend _base_.custom_hooks instead of adding another).')
        for hook in runner.hooks:
            if type(hook) is CheckpointHook and hook.max_keep_ckpts > 0:
                runner.logger.warning(
                    "CheckpointHook deletes the oldest checkpoint before it "
                    "writes the next one, so an interrupted write can lose "
                    "the weights and past predictions: use default_hooks="
                    "dict(checkpoint=dict(type='AtomicCheckpointHook')).")
        if not any(type(h).__name__ == 'EpochSeedHook' for h in runner.hooks):
            runner.logger.warning(
                "custom_hooks has no EpochSeedHook, so --resume will not "
                "continue exactly: the resumed run draws other "
                "augmentations (and, without a fixed seed, another data "
                "order) than the uninterrupted run would. Add "
                "dict(type='EpochSeedHook') to custom_hooks.")

    @staticmethod
    def _resolve_resume(runner) -> None:
        """``--resume`` without a path: the checkpoint the work directory
        really holds when ``last_checkpoint`` names none."""
        if getattr(runner, '_resume', False) and runner._load_from is None:
            path, why = latest_checkpoint(runner.work_dir)
            if why is not None:
                runner.logger.warning(f'resume: {why}.')
                runner._load_from = path  # what load_or_resume resumes

    @staticmethod
    def _checkpoint_to_load(runner):
        """The file the Runner resumes or loads (as its load_or_resume
        picks it) and which of the two it does."""
        path, resume = runner._load_from, getattr(runner, '_resume', False)
        if resume and path is None:
            path = find_latest_checkpoint(runner.work_dir)
        return path, 'resume' if resume else 'load_from'

    def before_train(self, runner) -> None:
        """Check the loop and data, dry-run the model, build the store,
        check the disk for the checkpoints that will hold it, restore a
        resumed one and guard the optimizer steps."""
        algorithm = self._algorithm(runner)
        self._check_loop(runner)
        self._check_evaluators(runner, algorithm)
        self._check_training_set(runner, algorithm)
        self._dry_run(runner, algorithm)
        self._build_store(runner, algorithm)
        self._index_check = SampleIndexCheck(runner.train_dataloader,
                                             self.store.num_samples)
        warning = check_checkpoint_space(runner, self.store.nbytes)
        if warning is not None:
            runner.logger.warning(warning)
        self._log_what_is_added(runner, algorithm)
        if self._resumed_state is not None:
            self._restore_store(runner)
        algorithm.attach_past_predictions(self.store)
        self._check_losses_before_optimizer_steps(runner, algorithm)

    @staticmethod
    def _check_loop(runner) -> None:
        """The store and alpha_t advance once per epoch."""
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise config_error(
                'train_cfg', 'PastPredictionHook keeps one prediction per '
                'sample per epoch and needs an epoch-based loop',
                'Set train_cfg=dict(by_epoch=True, max_epochs=...).')
        sampler = getattr(runner.train_dataloader, 'sampler', None)
        if isinstance(sampler, InfiniteSampler):
            raise config_error(
                'train_dataloader.sampler', 'InfiniteSampler never ends an '
                'epoch, and the store and alpha_t advance once per epoch',
                "Use sampler=dict(type='DefaultSampler', shuffle=True).")

    @staticmethod
    def _check_training_set(runner, algorithm) -> None:
        """Classes, sample indices and steps per epoch suit the store."""
        loader = runner.train_dataloader
        check_dataset_fits(loader.dataset, algorithm.num_classes)
        check_sample_index_space(loader.dataset)
        check_steps_per_epoch(loader)

    @staticmethod
    def _dry_run(runner, algorithm) -> None:
        """One sample tells the image size, and a dry run whether every
        module and loss fits what it receives, before hours of training."""
        dataset = runner.train_dataloader.dataset
        if not len(dataset):
            return
        sample = dataset[0]
        label = getattr(sample['data_samples'], 'gt_label', None)
        if label is not None:
            check_labels(label, algorithm.num_classes)
        check_views = getattr(
            getattr(algorithm, 'view_transform', None), 'check_image_size',
            None)
        if check_views is not None:
            check_views(*sample['inputs'].shape[-2:])
        batch = algorithm.data_preprocessor(
            dict(inputs=[sample['inputs']] * 2,
                 data_samples=[sample['data_samples']] * 2), False)
        algorithm.check_forward(batch['inputs'])

    def _build_store(self, runner, algorithm) -> None:
        """A store sized for the training set, where it fits, and the
        training set's fingerprint that its checkpoints carry."""
        dataset = runner.train_dataloader.dataset
        sizes = dict(
            num_samples=sample_index_space(dataset),
            num_classes=algorithm.num_classes,
            num_views=algorithm.num_views,
            num_branches=algorithm.num_branches)
        options = dict(self.store_options)
        options['device'] = store_device(
            sizes, options, next(algorithm.parameters()).device)
        self.store = PastPredictionStore(**sizes, **options)
        runner.logger.info(f'Past-prediction store: '
                           f'{self.store.nbytes / 2**20:.1f} MiB on '
                           f'{options["device"]}.')
        self.fingerprint = training_set_fingerprint(dataset)

    def _restore_store(self, runner) -> None:
        """The resumed checkpoint's store, on the same training set."""
        path = self._checkpoint_to_load(runner)[0]
        self._check_same_training_set(runner, path)
        self.store.load_state_dict(self._resumed_state, f'checkpoint {path}')
        self._resumed_state = None
        runner.logger.info('Restored the past-prediction store.')

    def _check_same_training_set(self, runner, path: str) -> None:
        """The resumed store indexes this run's training set."""
        saved, self._resumed_fingerprint = self._resumed_fingerprint, None
        if saved is None:
            runner.logger.warning(
                f'resume: checkpoint {path} predates training-set '
                f'fingerprints, so nothing checks that its past predictions '
                f'belong to this training set.')
        elif saved['sha256'] != self.fingerprint['sha256']:
            raise LSSKDCheckpointError(
                f"resume: the past predictions in checkpoint {path} belong "
                f"to another training set ({saved['description']}, "
                f"fingerprint {saved['sha256'][:12]}) than this run's "
                f"({self.fingerprint['description']}, fingerprint "
                f"{self.fingerprint['sha256'][:12]}), so every target would "
                f"mix in other images' predictions. Resume with the training "
                f"set the checkpoint was trained on, or start from its "
                f"weights alone with load_from (a fresh store).")

    def _log_what_is_added(self, runner, algorithm) -> None:
        """What the method adds to the classifier, in one line: branches
        and the stages they hang on, their parameters beside the
        backbone's, the store, and the size a checkpoint will have."""

        def count(module) -> int:
            return sum(p.numel() for p in module.parameters())

        backbone = count(algorithm.architecture.backbone)
        parts = []
        if hasattr(algorithm, 'aux_neck'):
            branches = count(algorithm.aux_neck) + count(algorithm.aux_head)
            stages = getattr(algorithm.architecture.backbone, 'out_indices',
                             None)
            parts.append(
                f'{algorithm.num_branches} branches on backbone stages '
                f'{tuple(stages) if stages is not None else "?"} with '
                f'{branches / 1e6:.2f} M parameters ({branches / backbone:.1f}'
                f' x the backbone\'s {backbone / 1e6:.2f} M)')
        parts.append(f'a past-prediction store of '
                     f'{self.store.nbytes / 2**20:.1f} MiB '
                     f'({self.store.dtype}, {self.store.num_samples} samples)')
        weights = sum(t.numel() * t.element_size()
                      for t in algorithm.state_dict().values())
        # Optimizer state per parameter: SGD's momentum, Adam's two moments.
        slots = len(self._state_slots(runner))
        params = sum(p.numel() * p.element_size()
                     for p in algorithm.parameters() if p.requires_grad)
        checkpoint = weights + slots * params + self.store.nbytes
        runner.logger.info(
            f'{type(algorithm).__name__} adds ' + ', and '.join(parts) +
            f'; every checkpoint will take about {checkpoint / 2**20:.1f} '
            f'MiB.')

    @staticmethod
    def _state_slots(runner) -> tuple:
        """The per-parameter state the optimizer keeps."""
        slots = set()
        for wrapper in _optim_wrappers(runner):
            optimizer = wrapper.optimizer
            if isinstance(optimizer, torch.optim.SGD) and any(
                    g.get('momentum', 0) for g in optimizer.param_groups):
                slots.add('momentum_buffer')
            elif isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
                slots.update({'exp_avg', 'exp_avg_sq'})
        return tuple(slots)

    @staticmethod
    def _check_evaluators(runner, algorithm) -> None:
        """BranchAccuracy needs the branches' predictions at evaluation."""
        for name in ('val', 'test'):
            loop = getattr(runner, f'_{name}_loop', None)
            evaluator = getattr(loop, 'evaluator', None) or \
                runner.cfg.get(f'{name}_evaluator')
            metrics = getattr(evaluator, 'metrics', None) or evaluator or []
            if isinstance(metrics, dict):
                metrics = [metrics]
            uses_branches = any(
                type(m).__name__ == 'BranchAccuracy' or (isinstance(
                    m, dict) and 'BranchAccuracy' in str(m.get('type')))
                for m in metrics)
            if uses_branches and not getattr(algorithm, 'evaluate_branches',
                                             False):
                raise config_error(
                    f'{name}_evaluator', 'BranchAccuracy reads the '
                    'auxiliary branches\' predictions, which the model does '
                    'not make at evaluation',
                    'Set model.evaluate_branches=True, or drop '
                    'BranchAccuracy.')

    def _check_losses_before_optimizer_steps(self, runner, algorithm) -> None:
        """Run the NaN check as every optimizer's step pre-hook: after the
        backward, before any weight changes; on the host, or on the device
        with ``finite_check='device'``."""
        wrappers = _optim_wrappers(runner)
        if self._guard is None:
            for wrapper in wrappers:
                self._step_hook_handles.append(
                    wrapper.optimizer.register_step_pre_hook(
                        lambda *args: algorithm.check_losses_finite()))
            return
        if self.check_interval is None:
            self.check_interval = logger_interval(runner)
        guard = self._guard

        def before_step(optimizer, *args):
            pending, algorithm._unchecked_losses = \
                algorithm._unchecked_losses, None
            guard.before_step(optimizer, pending and pending[0], runner.iter)

        for wrapper in wrappers:
            guard.attach(wrapper.optimizer)
            self._step_hook_handles += [
                wrapper.optimizer.register_step_pre_hook(before_step),
                wrapper.optimizer.register_step_post_hook(
                    lambda optimizer, *args: guard.after_step(optimizer))
            ]

    def after_train(self, runner) -> None:
        """Take the NaN check off the optimizers again."""
        for handle in self._step_hook_handles:
            handle.remove()
        self._step_hook_handles = []

    def before_train_epoch(self, runner) -> None:
        """Set this epoch's ``alpha_t`` on the algorithm."""
        alpha = self.alpha_T * (runner.epoch + 1) / runner.max_epochs
        self._algorithm(runner).alpha = alpha
        runner.message_hub.update_scalar('train/alpha', alpha)
        if self._index_check is not None:
            self._index_check.start_epoch()

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Check the batch's labels and sample indices; tell the algorithm
        where training is, for its error messages."""
        algorithm = self._algorithm(runner)
        samples = (data_batch or {}).get('data_samples') or []
        # Here, before the data preprocessor moves them to the device,
        # reading them costs no host-device synchronisation.
        if samples and all('gt_label' in s for s in samples):
            check_labels(torch.cat([s.gt_label for s in samples]),
                         algorithm.num_classes)
        if self._index_check is not None and samples and all(
                'sample_idx' in s for s in samples):
            self._index_check.check([s.sample_idx for s in samples])
        algorithm.step_context = self._describe_step(runner, runner.iter,
                                                     runner.epoch)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Write the step's predictions, from every rank, into the store."""
        algorithm = self._algorithm(runner)
        valid = None
        if self._guard is None:
            # Mostly a no-op (the optimizer step checked); costs no extra
            # wait, since the logging hooks have already read the losses.
            algorithm.check_losses_finite()
        else:
            if algorithm._unchecked_losses is not None:
                # No optimizer step ran (gradient accumulation).
                losses, algorithm._unchecked_losses = \
                    algorithm._unchecked_losses[0], None
                self._guard.observe(losses, runner.iter)
            valid = self._guard.valid
        indices, final, branches = algorithm.pop_step_predictions()
        if get_world_size() > 1:
            # Every rank sees other samples next epoch: keep the full store on
            # each rank. Branch SADs are sample-major, so they concatenate.
            indices = torch.cat(all_gather(indices))
            final = torch.cat(all_gather(final))
            branches = torch.cat(all_gather(branches), dim=1)
        self.store.update(indices, final, branches, runner.epoch, valid)
        if self._guard is not None and (
                self.every_n_inner_iters(batch_idx, self.check_interval)
                or self.end_of_epoch(runner.train_dataloader, batch_idx)):
            self._guard.raise_if_bad(
                lambda i: self._describe_step(runner, i))

    @staticmethod
    def _describe_step(runner, iteration: int, epoch: int = None) -> str:
        """Where the 0-based ``iteration`` (of the 0-based ``epoch``, by
        default the one it falls in) is, for error messages."""
        if epoch is None:
            epoch = iteration // len(runner.train_dataloader)
        last = runner.message_hub.get_info('last_ckpt') or 'none saved yet'
        return (f'epoch {epoch + 1}, iteration {iteration + 1} '
                f'(last checkpoint: {last})')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Save the store with the checkpoint (after the device check has
        read whether every step since the last read was finite)."""
        if self._guard is not None:
            self._guard.raise_if_bad(
                lambda i: self._describe_step(runner, i))
        if self.store is not None:
            checkpoint[CHECKPOINT_KEY] = self.store.state_dict()
            checkpoint[FINGERPRINT_KEY] = self.fingerprint

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check the weights fit; restore the store on resume (``load_from``
        starts a fresh one)."""
        path, purpose = self._checkpoint_to_load(runner)
        check_loaded_weights(checkpoint_state_dict(checkpoint),
                             self._algorithm(runner), path, purpose)
        if purpose != 'resume':
            return
        check_ends_an_epoch(checkpoint.get('meta') or {},
                            len(runner.train_dataloader), path)
        changed = schedule_changes(checkpoint.get('param_schedulers'),
                                   runner.param_schedulers)
        if changed:
            runner.logger.warning(
                f'resume: the parameter schedules restored from {path} are '
                f'not this config\'s ({"; ".join(changed)}): mmengine '
                f'restores the checkpoint\'s schedules whole, so this run '
                f'follows the old ones. To train on with the new schedule, '
                f'start from the weights with load_from instead.')
        self._resumed_fingerprint = checkpoint.get(FINGERPRINT_KEY)
        state = checkpoint.get(CHECKPOINT_KEY)
        if state is None:
            raise LSSKDCheckpointError(
                f'resume: checkpoint {path} has no {CHECKPOINT_KEY!r}, so '
                f"LSSKD's past predictions would restart empty. Resume from "
                f'a checkpoint saved by an LSSKD run, or use load_from to '
                f'start from its weights alone.')
        if self.store is None:  # resume runs before before_train
            self._resumed_state = state
        else:
            self._check_same_training_set(runner, path)
            self.store.load_state_dict(state, f'checkpoint {path}')
