"""MobileNetV2 + a light FPN / U-Net style decoder.

Top-down path over strides 32 -> 16 -> 8 -> 4: 1x1 lateral conv, bilinear upsample + Add, then a
depthwise-separable 3x3 conv (cheap at high resolution). Logits come out at stride 4, which
keeps thin classes (pole, sign, pedestrian) that a stride-8 head blurs away.
Ops: Conv, BN, ReLU6, Resize, Add only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.train.models.mobilenetv2 import CHANNELS, ConvBNReLU, MobileNetV2Encoder

STRIDES = (32, 16, 8, 4)


class DWSep(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1, each with BN + ReLU6."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBNReLU(cin, cin, 3, groups=cin), ConvBNReLU(cin, cout, 1))


class FPNSeg(nn.Module):
    def __init__(self, num_classes: int, output_stride: int = 32, width: int = 96) -> None:
        super().__init__()
        self.encoder = MobileNetV2Encoder(output_stride)
        self.lateral = nn.ModuleList(ConvBNReLU(CHANNELS[s], width, 1) for s in STRIDES)
        self.smooth = nn.ModuleList(DWSep(width, width) for _ in STRIDES[1:])
        self.head = nn.Sequential(DWSep(width, width), nn.Conv2d(width, num_classes, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        y = self.lateral[0](feats[STRIDES[0]])
        for lat, smooth, s in zip(self.lateral[1:], self.smooth, STRIDES[1:]):
            skip = lat(feats[s])
            if y.shape[-2:] != skip.shape[-2:]:
                y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = smooth(y + skip)
        return self.head(y)
