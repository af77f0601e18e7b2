from .progressive_targets import progressive_targets
from .rotation_views import RotationViews

__all__ = ['RotationViews', 'progressive_targets']
