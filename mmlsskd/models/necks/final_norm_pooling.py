from typing import Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import nn


@MODELS.register_module()
class FinalNormPooling(BaseModule):
    """The final BN-ReLU of a pre-activation network, then average pooling.

    A pre-activation network (WRN, PreAct-ResNet) normalises its last block's
    output once more before pooling. Placing that BN-ReLU in the classifier's
    neck rather than in the backbone lets the backbone return the raw
    last-stage output, which is what HSSAKD's auxiliary branch after the
    last stage reads (``WideResNet_CIFAR(final_norm=False)``).

    Args:
        in_channels (int): Channels of the last stage.
        norm_cfg (dict): Normalization config. Defaults to BN.
        init_cfg (dict, optional): Initialization config. Defaults to ones
            for the norm weight, as the backbone's norms.
    """

    def __init__(self,
                 in_channels: int,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg=dict(type='Constant', val=1,
                               layer=['_BatchNorm', 'GroupNorm'])) -> None:
        super().__init__(init_cfg=init_cfg)
        self.norm = build_norm_layer(norm_cfg, in_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]
                ) -> Tuple[torch.Tensor]:
        """Normalise and pool the last feature map.

        Args:
            inputs (torch.Tensor | Sequence[torch.Tensor]): The backbone's
                output; the last feature map, (N, C, H, W), is used.

        Returns:
            tuple[torch.Tensor]: The pooled feature, (N, C), as a 1-tuple
            like mmpretrain's necks return.
        """
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs, )
        x = self.relu(self.norm(inputs[-1]))
        return (self.pool(x).flatten(1), )
