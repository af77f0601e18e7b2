from .branch_losses import averages_over_rows, sum_over_parts
from .forward_checks import (backbone_settings_error, head_fix,
                             run_named)
from .progressive_targets import progressive_targets
from .rotation_views import RotationViews

__all__ = [
    'RotationViews', 'averages_over_rows', 'backbone_settings_error',
    'head_fix', 'progressive_targets', 'run_named', 'sum_over_parts'
]
