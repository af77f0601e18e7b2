from .onnx_export import ONNX_OPSET, export_onnx, onnx_logits
from .student import (drop_branch_only_weights, load_student_weights,
                      load_training_checkpoint, student_checkpoint,
                      student_config)

__all__ = [
    'ONNX_OPSET', 'drop_branch_only_weights', 'export_onnx',
    'load_student_weights', 'load_training_checkpoint', 'onnx_logits',
    'student_checkpoint', 'student_config'
]
