"""Export a classifier's logits to ONNX and check it with onnxruntime."""
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

ONNX_OPSET = 18  # the lowest opset torch's dynamo-based exporter writes


class ClassifierLogits(nn.Module):
    """``classifier(inputs, mode='tensor')`` as a one-input module.

    Args:
        classifier (nn.Module): An mmpretrain classifier.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.classifier(input, mode='tensor')


def export_onnx(classifier: nn.Module,
                example: torch.Tensor,
                path: str,
                opset: int = ONNX_OPSET,
                metadata: Optional[Dict[str, str]] = None) -> None:
    """Write the classifier's logits as ONNX with a dynamic batch axis.

    The graph takes preprocessed images (N, 3, H, W), float32, normalised
    as the data preprocessor does, and returns logits (N, num_classes).

    Args:
        classifier (nn.Module): The classifier, in eval mode.
        example (torch.Tensor): A preprocessed batch, for tracing.
        path (str): Output ``.onnx`` file.
        opset (int): ONNX opset. Defaults to 18.
        metadata (dict[str, str], optional): Written into the model's
            ``metadata_props`` (e.g. the normalisation).
    """
    import onnx

    batch = torch.export.Dim('batch', min=1, max=65536)
    torch.onnx.export(
        ClassifierLogits(classifier).eval(), (example, ),
        path,
        dynamo=True,
        opset_version=opset,
        input_names=['input'],
        output_names=['logits'],
        dynamic_shapes=({
            0: batch
        }, ),
        external_data=False)
    model = onnx.load(path)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def onnx_logits(path: str, inputs: torch.Tensor) -> np.ndarray:
    """Logits of an exported classifier, run by onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': inputs.cpu().numpy()})[0]
