"""A test-only hook that records, per rank, what the store held and what
each lookup found, so a multi-process test can compare the ranks."""
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RankStoreDumpHook(Hook):

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        hook = next(h for h in runner.hooks
                    if type(h).__name__ == 'PastPredictionHook')
        self.store, self.found = hook.store, []
        lookup = self.store.lookup

        def recording_lookup(indices, device=None):
            past = lookup(indices, device)
            self.found.append((runner.epoch, indices.clone(),
                               past.written.clone()))
            return past

        self.store.lookup = recording_lookup

    def after_train_epoch(self, runner) -> None:
        torch.save(
            dict(store=self.store.state_dict(), found=self.found),
            f'{runner.work_dir}/rank{get_rank()}_epoch{runner.epoch}.pth')
