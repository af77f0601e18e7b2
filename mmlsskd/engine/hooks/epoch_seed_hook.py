from mmengine.hooks import Hook
from mmengine.runner.utils import set_random_seed
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the random generators from the run's seed and the epoch.

    mmengine seeds Python's, numpy's and torch's generators once, when the
    Runner starts. A run resumed after epoch ``k`` then draws epoch
    ``k + 1``'s augmentations (in the main process) and dropout from a
    freshly seeded state, while the uninterrupted run draws them from where
    epoch ``k`` left off, and the two runs diverge. Seeding every epoch
    from ``seed + epoch`` makes epoch ``k + 1`` the same in both, so
    ``--resume`` continues exactly as if nothing had stopped (the sampler
    order depends on the seed and the epoch alone, and mmengine seeds
    non-persistent data-loader workers the same way every epoch).

    Persistent data-loader workers keep their generators from epoch to
    epoch, out of reach of this hook; with them a resumed run's
    augmentations differ, and the hook says so before training.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        """Give the sampler the run's seed; warn about persistent workers."""
        loader = runner.train_dataloader
        # mmengine builds the sampler before it resumes, with a fresh seed
        # when the config has none; the resumed run's seed is the one that
        # reproduces the data order. (With diff_rank_seed every rank has its
        # own seed and the sampler keeps its shared one.)
        sampler = getattr(loader, 'sampler', None)
        if hasattr(sampler, 'seed') and \
                not runner._randomness_cfg.get('diff_rank_seed', False):
            sampler.seed = runner.seed
        if getattr(loader, 'persistent_workers', False) and \
                loader.num_workers > 0:
            runner.logger.warning(
                'EpochSeedHook: persistent data-loader workers keep their '
                'random state across epochs, so a resumed run will not '
                'replay the same augmentations. Set '
                'train_dataloader.persistent_workers=False (or '
                'num_workers=0) for exact resume.')

    def before_train_epoch(self, runner) -> None:
        """Seed every generator from ``seed + epoch``."""
        set_random_seed(runner.seed + runner.epoch)
