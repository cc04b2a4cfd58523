"""MobileNetV2 + LR-ASPP (Howard et al. 2019, "Searching for MobileNetV3") segmentation head.

Ops: Conv, BN, ReLU, GlobalAveragePool, Sigmoid, Mul, Resize, Add: all ONNX/TensorRT friendly.
Outputs logits at output stride 8 (upsampled to the input size by the loss / export head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.train.models.mobilenetv2 import CHANNELS, MobileNetV2Encoder


class LRASPP(nn.Module):
    def __init__(self, num_classes: int, output_stride: int = 16, width: int = 128,
                 low_stride: int = 8) -> None:
        super().__init__()
        self.encoder = MobileNetV2Encoder(output_stride)
        self.low_stride = low_stride
        high_ch, low_ch = CHANNELS[32], CHANNELS[low_stride]
        self.cbr = nn.Sequential(nn.Conv2d(high_ch, width, 1, bias=False),
                                 nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                   nn.Conv2d(high_ch, width, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.high_classifier = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        high, low = feats[32], feats[self.low_stride]
        y = self.cbr(high) * self.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(y)
