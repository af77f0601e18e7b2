from .batch_mixing import (MixingRecorder, dominant_rows, mix_rows,
                           record_mixing, with_classifier_augments)
from .branch_losses import averages_over_rows, sum_over_parts
from .forward_checks import (backbone_settings_error, build_settings_error,
                             head_fix, run_named)
from .progressive_targets import progressive_targets
from .rotation_views import RotationViews

__all__ = [
    'MixingRecorder', 'RotationViews', 'averages_over_rows',
    'backbone_settings_error', 'build_settings_error', 'dominant_rows',
    'head_fix', 'mix_rows', 'progressive_targets', 'record_mixing',
    'run_named', 'sum_over_parts', 'with_classifier_augments'
]
