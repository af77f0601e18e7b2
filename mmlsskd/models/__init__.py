from .algorithms import LSSKD
from .heads import RotationJointHead
from .necks import AuxiliaryBranchNeck
from .utils import RotationViews, progressive_targets

__all__ = [
    'AuxiliaryBranchNeck', 'LSSKD', 'RotationJointHead', 'RotationViews',
    'progressive_targets'
]
