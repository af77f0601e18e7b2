from .auxiliary_branch_neck import AuxiliaryBranchNeck, probe_stage_shapes

__all__ = ['AuxiliaryBranchNeck', 'probe_stage_shapes']
