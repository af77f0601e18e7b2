from .rotation_joint_head import RotationJointHead

__all__ = ['RotationJointHead']
