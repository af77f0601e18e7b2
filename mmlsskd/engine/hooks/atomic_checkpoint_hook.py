import os
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS


def _replace_text(path: str, text: str) -> None:
    partial = f'{path}.partial'
    with open(partial, 'w') as f:
        f.write(text)
    os.replace(partial, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook``, safe to interrupt while it writes.

    mmengine's hook deletes the checkpoint that falls out of
    ``max_keep_ckpts`` before it writes the new one, and writes in place. An
    interrupt (SIGINT, SIGTERM, a full disk) during the write can then leave
    only a truncated file, and with it the run's weights and LSSKD's past
    predictions are lost. This hook writes the new checkpoint to a hidden
    ``.<name>.partial`` file and renames it into place, replaces
    ``last_checkpoint`` the same way, and deletes outdated checkpoints only
    after both. Until the rename the previous checkpoint is complete,
    ``last_checkpoint`` names it, and ``--resume`` continues from it.

    Remote storage backends keep mmengine's behaviour. Arguments are those
    of ``CheckpointHook``.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
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
        partial = f'.{filename}.partial'
        runner.save_checkpoint(
            self.out_dir,
            partial,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        os.replace(osp.join(self.out_dir, partial), self.last_ckpt)
        _replace_text(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if outdated is not None:
            old = osp.join(self.out_dir, self.filename_tmpl.format(outdated))
            if osp.isfile(old):
                os.remove(old)
