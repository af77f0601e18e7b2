import glob
import os
import os.path as osp
import shutil

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import HOOKS

from ...utils.errors import CheckpointWriteError


def _replace_text(path: str, text: str) -> None:
    partial = f'{path}.partial'
    with open(partial, 'w') as f:
        f.write(text)
    os.replace(partial, path)


def _remove_if_present(path: str) -> None:
    if osp.isdir(path):  # mmengine's best checkpoints can be directories
        shutil.rmtree(path)
    elif osp.lexists(path):
        os.remove(path)


class _AtomicSaves:
    """The Runner as mmengine's best-checkpoint code sees it: the same in
    everything but ``save_checkpoint``, which writes through the hook."""

    def __init__(self, runner, hook: 'AtomicCheckpointHook') -> None:
        self.runner = runner
        self._hook = hook

    def __getattr__(self, name: str):
        return getattr(self.runner, name)

    def save_checkpoint(self, out_dir: str, filename: str, **kwargs) -> None:
        self._hook._write(self.runner, out_dir, filename, **kwargs)


class _DeferredRemovals:
    """The hook's file backend with ``remove`` and ``rmtree`` postponed:
    mmengine removes the previous best checkpoint before it writes the new
    one."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.postponed = []

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def remove(self, path: str) -> None:
        self.postponed.append(path)

    def rmtree(self, path: str) -> None:
        self.postponed.append(path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, safe to interrupt while it writes.

    mmengine's hook deletes the checkpoint that falls out of
    ``max_keep_ckpts``, and the previous ``save_best`` checkpoint, before it
    writes the new one, and writes in place. An interrupt (SIGINT, SIGTERM,
    SIGKILL, a full disk) during the write can then leave only a truncated
    file, and with it the run's weights and LSSKD's past predictions are
    lost. This hook writes every checkpoint (the epoch's, the best, the
    last) to a hidden ``.<name>.partial`` file and renames it into place,
    replaces ``last_checkpoint`` the same way, and deletes outdated
    checkpoints only after all that. Until the rename the previous
    checkpoint is complete, ``last_checkpoint`` names it, and ``--resume``
    continues from it.

    A write that fails (e.g. a full disk) removes its partial file, leaves
    every earlier checkpoint, and stops training with one line that says
    what to do. Partial files that a killed run left behind are removed
    when training starts.

    An epoch's checkpoint is written before the epoch's validation, so a
    run killed between the two resumes after an epoch that was never
    validated, and its curve misses that point for good. A run resumed
    after an epoch that validates (``val_interval``, ``val_begin``, the
    last epoch) therefore validates it again before training on:
    validation changes no weight, so a repeat logs the same figures.

    Remote storage backends keep mmengine's behaviour. Arguments are those
    of ``CheckpointHook``.
    """

    def before_train(self, runner) -> None:
        """Set up as mmengine does; remove partial files of killed runs;
        validate the epoch a run resumes after if it validates."""
        super().before_train(runner)
        self._remove_partial_files(runner)
        self._validate_resumed_epoch(runner)

    @staticmethod
    def _validate_resumed_epoch(runner) -> None:
        loop = runner.train_loop
        epoch = runner.epoch  # 0 unless resumed
        if not isinstance(loop, EpochBasedTrainLoop) or epoch == 0 or \
                runner.val_loop is None:
            return
        # mmengine's own condition for validating after an epoch.
        if epoch >= loop.val_begin and (epoch % loop.val_interval == 0
                                        or epoch == loop.max_epochs):
            runner.logger.info(
                f'Resumed after epoch {epoch}, whose checkpoint was written '
                f'before its validation: validating it again, so that a run '
                f'killed in between misses no evaluation.')
            runner.val_loop.run()

    def _remove_partial_files(self, runner) -> None:
        if not isinstance(self.file_backend, LocalBackend) or \
                not is_main_process():
            return
        left = glob.glob(osp.join(glob.escape(self.out_dir), '.*.partial'))
        if left:
            size = sum(osp.getsize(path) for path in left)
            for path in left:
                _remove_if_present(path)
            runner.logger.info(
                f'Removed {len(left)} partial checkpoint file(s) '
                f'({size / 2**20:.1f} MiB) that an interrupted run left in '
                f'{self.out_dir}; they were never complete checkpoints.')

    def _write(self, runner, out_dir: str, filename: str, **kwargs) -> str:
        """``runner.save_checkpoint`` into ``.<filename>.partial``, renamed
        to ``filename`` once complete; its path."""
        path = osp.join(out_dir, filename)
        partial = osp.join(out_dir, f'.{filename}.partial')
        try:
            runner.save_checkpoint(out_dir, f'.{filename}.partial', **kwargs)
            if is_main_process():
                os.replace(partial, path)
        except OSError as error:
            if is_main_process():
                _remove_if_present(partial)
            # What --resume reads: last_checkpoint, replaced only after a
            # complete write.
            last = osp.join(runner.work_dir, 'last_checkpoint')
            last = open(last).read().strip() if osp.isfile(last) else None
            kept = (f'the last complete one is {last}' if last else
                    'none was written before it')
            raise CheckpointWriteError(
                f'checkpoint: writing {path} failed '
                f'({error.strerror or error}); its partial file was removed '
                f'and the earlier checkpoints are untouched ({kept}). Free '
                f'disk space in {out_dir} (or train into a --work-dir with '
                f'room), then continue with tools/train.py CONFIG --resume.'
            ) from error
        return path

    def _save_checkpoint_with_step(self, runner, step, meta):
        runner = getattr(runner, 'runner', runner)  # unwrap _AtomicSaves
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # Saved in the checkpoint, as mmengine does.
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._write(
            runner,
            self.out_dir,
            filename,
            file_client_args=self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        _replace_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if outdated is not None:
            _remove_if_present(
                osp.join(self.out_dir, self.filename_tmpl.format(outdated)))

    def _save_best_checkpoint(self, runner, metrics) -> None:
        # mmengine's logic decides what is best and names the files; the
        # runner it gets writes atomically, and the previous best is
        # removed only once the new one is in place.
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_best_checkpoint(runner, metrics)
        backend = self.file_backend
        self.file_backend = _DeferredRemovals(backend)
        try:
            super()._save_best_checkpoint(_AtomicSaves(runner, self), metrics)
            postponed = self.file_backend.postponed
        finally:
            self.file_backend = backend
        current = {getattr(self, 'best_ckpt_path', None),
                   *getattr(self, 'best_ckpt_path_dict', {}).values()}
        for path in postponed:
            if path not in current and is_main_process():
                _remove_if_present(path)
