import os
from typing import Optional

import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import all_gather, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.optim import OptimWrapperDict
from mmengine.runner import EpochBasedTrainLoop, find_latest_checkpoint
from mmpretrain.registry import HOOKS

from ...utils.validation import (LSSKDCheckpointError,
                                  check_checkpoint_file,
                                  check_dataset_fits, check_labels,
                                  check_sample_index_space,
                                  check_steps_per_epoch,
                                  checkpoint_state_dict,
                                  check_loaded_weights, check_square_views,
                                  check_store_options, check_unit_interval,
                                  config_error, latest_checkpoint,
                                  sample_index_space,
                                  unwrap_model)
from ..device_finite_guard import DeviceFiniteGuard
from ..past_prediction_store import PastPredictionStore
from ..training_set_fingerprint import training_set_fingerprint
from .batched_runtime_info_hook import logger_interval

CHECKPOINT_KEY = 'lsskd_past_predictions'
FINGERPRINT_KEY = 'lsskd_training_set'


def available_host_memory() -> Optional[int]:
    """Bytes the host can still give without swapping (Linux's
    MemAvailable); None where unknown."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


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
        if getattr(runner, '_resume', False) and runner._load_from is None:
            path, why = latest_checkpoint(runner.work_dir)
            if why is not None:
                runner.logger.warning(f'resume: {why}.')
                runner._load_from = path  # what load_or_resume resumes
        path, purpose = self._checkpoint_to_load(runner)
        if path is not None:
            check_checkpoint_file(path, purpose)

    @staticmethod
    def _checkpoint_to_load(runner):
        """The file the Runner resumes or loads (as its load_or_resume
        picks it) and which of the two it does."""
        path, resume = runner._load_from, getattr(runner, '_resume', False)
        if resume and path is None:
            path = find_latest_checkpoint(runner.work_dir)
        return path, 'resume' if resume else 'load_from'

    def before_train(self, runner) -> None:
        """Check the data, build the store, restore a resumed one."""
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise config_error(
                'train_cfg', 'PastPredictionHook keeps one prediction per '
                'sample per epoch and needs an epoch-based loop',
                'Set train_cfg=dict(by_epoch=True, max_epochs=...).')
        algorithm = self._algorithm(runner)
        loader = runner.train_dataloader
        if isinstance(getattr(loader, 'sampler', None), InfiniteSampler):
            raise config_error(
                'train_dataloader.sampler', 'InfiniteSampler never ends an '
                'epoch, and the store and alpha_t advance once per epoch',
                "Use sampler=dict(type='DefaultSampler', shuffle=True).")
        self._check_evaluators(runner, algorithm)
        dataset = loader.dataset
        check_dataset_fits(dataset, algorithm.num_classes)
        check_sample_index_space(dataset)
        check_steps_per_epoch(loader)
        if len(dataset):
            # One sample tells the image size, and a dry run whether every
            # module fits what it receives, before hours of training.
            sample = dataset[0]
            label = getattr(sample['data_samples'], 'gt_label', None)
            if label is not None:
                check_labels(label, algorithm.num_classes)
            view_transform = getattr(algorithm, 'view_transform', None)
            if view_transform is not None:
                check_square_views(view_transform,
                                   *sample['inputs'].shape[-2:])
            batch = algorithm.data_preprocessor(
                dict(inputs=[sample['inputs']] * 2,
                     data_samples=[sample['data_samples']] * 2), False)
            algorithm.check_forward(batch['inputs'])
        sizes = dict(
            num_samples=sample_index_space(dataset),
            num_classes=algorithm.num_classes,
            num_views=algorithm.num_views,
            num_branches=algorithm.num_branches)
        options = dict(self.store_options)
        options['device'] = self._store_device(runner, algorithm, sizes,
                                               options)
        self.store = PastPredictionStore(**sizes, **options)
        self._log_what_is_added(runner, algorithm)
        self.fingerprint = training_set_fingerprint(dataset)
        if self._resumed_state is not None:
            path = self._checkpoint_to_load(runner)[0]
            self._check_same_training_set(runner, path)
            self.store.load_state_dict(self._resumed_state,
                                       f'checkpoint {path}')
            self._resumed_state = None
            runner.logger.info('Restored the past-prediction store.')
        algorithm.attach_past_predictions(self.store)
        self._check_losses_before_optimizer_steps(runner, algorithm)

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

    @staticmethod
    def _store_device(runner, algorithm, sizes: dict, options: dict):
        """Resolve ``device='auto'``: the model's GPU when the store takes at
        most a quarter of its free memory, else pinned host memory; the host
        without a GPU."""
        device = options['device']
        nbytes = PastPredictionStore.estimate_nbytes(
            **sizes, **{k: v for k, v in options.items() if k != 'device'})
        if device == 'auto':
            model_device = next(algorithm.parameters()).device
            device = 'cpu'
            if model_device.type == 'cuda':
                free, _ = torch.cuda.mem_get_info(model_device)
                device = model_device if nbytes <= free / 4 else 'pinned'
        runner.logger.info(
            f'Past-prediction store: {nbytes / 2**20:.1f} MiB on {device}.')
        PastPredictionHook._check_store_fits(sizes, options, nbytes, device)
        return device

    @staticmethod
    def _check_store_fits(sizes: dict, options: dict, nbytes: int,
                          device) -> None:
        """Stop before allocating a store the machine cannot hold, with the
        store setting that would fit."""
        if torch.device('cpu' if device == 'pinned' else device).type == \
                'cuda':
            available, _ = torch.cuda.mem_get_info(device)
            where = f'free memory of {device}'
            sharing = 1
        else:
            available = available_host_memory()
            where = 'available host memory'
            # Every rank of this machine holds a whole store.
            sharing = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
        if available is None or nbytes * sharing <= available:
            return
        bounded = dict(options, device=options.get('device', 'auto'))
        for step in (dict(dtype='float16'), dict(topk=32),
                     dict(branch_views='unrotated'), dict(topk=8)):
            bounded.update(step)
            fits = PastPredictionStore.estimate_nbytes(
                **sizes,
                **{k: v for k, v in bounded.items() if k != 'device'})
            if fits * sharing <= available / 2:
                break
        setting = ', '.join(f'{k}={v!r}' for k, v in bounded.items()
                            if k != 'device')
        raise config_error(
            'PastPredictionHook.store', f'the store of {sizes["num_samples"]} '
            f'samples needs {nbytes * sharing / 2**30:.1f} GiB'
            f'{f" ({sharing} ranks)" if sharing > 1 else ""}, more than the '
            f'{available / 2**30:.1f} GiB of {where}',
            f"Bound it: give custom_hooks' PastPredictionHook "
            f'store=dict({setting}), which needs '
            f'{fits * sharing / 2**30:.3f} GiB (the bounded forms: '
            f'docs/benchmarks.md).')

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

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        """Check the batch's labels; tell the algorithm where training is,
        for its error messages."""
        algorithm = self._algorithm(runner)
        samples = (data_batch or {}).get('data_samples') or []
        if samples and all('gt_label' in s for s in samples):
            # Here, before the data preprocessor moves them to the device,
            # reading them costs no host-device synchronisation.
            check_labels(torch.cat([s.gt_label for s in samples]),
                         algorithm.num_classes)
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
        self._check_ends_an_epoch(runner, checkpoint.get('meta') or {}, path)
        self._warn_if_the_schedule_changed(runner, checkpoint, path)
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

    @staticmethod
    def _warn_if_the_schedule_changed(runner, checkpoint: dict,
                                      path: str) -> None:
        """mmengine restores the checkpoint's parameter schedules whole
        (their end and milestones), so a resume with another max_epochs or
        schedule silently keeps the old one."""
        saved = checkpoint.get('param_schedulers')
        current = runner.param_schedulers
        if not isinstance(saved, list) or not isinstance(current, list):
            return
        changed = [
            f'{type(now).__name__} ends at {old.get("end")} in the '
            f'checkpoint, at {now.end} in this config'
            for now, old in zip(current, saved)
            if isinstance(old, dict) and 'end' in old and hasattr(now, 'end')
            and old['end'] != now.end
        ]
        if changed:
            runner.logger.warning(
                f'resume: the parameter schedules restored from {path} are '
                f'not this config\'s ({"; ".join(changed)}): mmengine '
                f'restores the checkpoint\'s schedules whole, so this run '
                f'follows the old ones. To train on with the new schedule, '
                f'start from the weights with load_from instead.')

    @staticmethod
    def _check_ends_an_epoch(runner, meta: dict, path: str) -> None:
        """mmengine's epoch loop resumes at the start of the saved epoch: a
        checkpoint from inside an epoch would repeat its first steps with
        other weights and a half-updated store."""
        steps = len(runner.train_dataloader)
        epoch, iteration = meta.get('epoch'), meta.get('iter')
        if epoch is None or iteration is None or not steps or \
                iteration == epoch * steps:
            return
        raise LSSKDCheckpointError(
            f'resume: checkpoint {path} was saved inside epoch {epoch + 1}, '
            f'after {iteration - epoch * steps} of its {steps} steps, and the '
            f'epoch loop would run that epoch again from its first batch, so '
            f'the run would not continue as it would have. Resume from a '
            f'checkpoint written at the end of an epoch (epoch_N.pth, by '
            f'default_hooks.checkpoint with by_epoch=True).')
