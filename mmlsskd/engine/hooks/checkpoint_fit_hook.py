from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ...utils.checkpoint_checks import (check_checkpoint_file,
                                        check_loaded_weights,
                                        checkpoint_state_dict)


@HOOKS.register_module()
class CheckpointFitHook(Hook):
    """Refuse a ``load_from`` checkpoint that would not load as the model.

    mmengine loads ``load_from`` non-strictly and only warns about missing
    or unexpected keys, so testing, say, an LSSKD training checkpoint with
    the exported student's config reports the accuracy of random weights.
    Before anything runs this hook checks that the file is complete (CRC);
    when it is loaded, before its weights reach the model, that its keys
    and shapes are the model's and its weights finite. ``tools/test.py``
    adds it to every run.

    Args:
        purpose (str): The setting named in messages. Defaults to
            ``'load_from'``.
    """

    priority = 'VERY_HIGH'

    def __init__(self, purpose: str = 'load_from') -> None:
        self.purpose = purpose

    def before_run(self, runner) -> None:
        """Check the file before the model or data are touched."""
        if runner._load_from:
            check_checkpoint_file(runner._load_from, self.purpose)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Check the loaded weights against the model."""
        check_loaded_weights(checkpoint_state_dict(checkpoint),
                             runner.model, runner._load_from, self.purpose)
