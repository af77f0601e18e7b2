from .auxiliary_branch_neck import AuxiliaryBranchNeck, probe_stage_shapes
from .final_norm_pooling import FinalNormPooling

__all__ = ['AuxiliaryBranchNeck', 'FinalNormPooling', 'probe_stage_shapes']
