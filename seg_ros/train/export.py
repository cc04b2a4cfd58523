"""Export a trained network to a self-describing ONNX file.

The exported graph takes ``input`` (1, 3, H, W) float32, already normalised per the card, and
ends in argmax so the runtime does no per-pixel work in Python: outputs ``labels`` (1, H, W)
uint8 class ids and ``confidence`` (1, H, W) float32 max softmax, both at the card's input size.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.errors import EngineError
from seg_ros.model_card import ModelCard, embed_in_onnx

INPUT_NAME = "input"
OUTPUT_NAMES = ("labels", "confidence")


class LabelsHead(nn.Module):
    """Wraps a logits network: bilinear upsample to the input size, argmax and max-softmax."""

    def __init__(self, net: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net = net
        self.label_dtype = torch.uint8 if num_classes <= 255 else torch.int32

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        confidence, labels = logits.softmax(dim=1).max(dim=1)
        return labels.to(self.label_dtype), confidence


def export_onnx(
    net: nn.Module,
    card: ModelCard,
    out: str | Path,
    opset: int = 17,
    verify: bool = True,
) -> Path:
    """Export ``net`` (logits, N x C x h x w) with the card embedded; verify against PyTorch.

    Verification runs the same random normalised input through PyTorch and onnxruntime and
    requires >= 99.9 % label agreement (ties on near-equal logits may flip a few pixels).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = LabelsHead(net, card.num_classes).eval()
    h, w = card.input_size
    example = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = net.eval()(example)
    if logits.shape[1] != card.num_classes:
        raise EngineError(
            f"the network outputs {logits.shape[1]} classes but the card lists "
            f"{card.num_classes}: fix the card's class_names or the model's head"
        )
    import onnx

    tmp = out.with_suffix(".tmp.onnx")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            head, (example,), str(tmp), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            opset_version=opset, dynamo=False,
        )
    model = onnx.load(str(tmp))
    tmp.unlink()
    embed_in_onnx(card.with_provenance(export_opset=opset), model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    if verify:
        verify_onnx(head, out, example)
    return out


def verify_onnx(head: nn.Module, path: Path, example: torch.Tensor) -> float:
    """Label agreement (fraction) between PyTorch and onnxruntime on ``example``."""
    import onnxruntime as ort

    with torch.no_grad():
        ref_labels, ref_conf = head(example)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, conf = sess.run(list(OUTPUT_NAMES), {INPUT_NAME: example.numpy()})
    agree = float(np.mean(labels == ref_labels.numpy()))
    if agree < 0.999 or not np.allclose(conf, ref_conf.numpy(), atol=1e-3):
        path.unlink(missing_ok=True)
        raise EngineError(
            f"exported ONNX disagrees with PyTorch ({agree:.4%} labels equal): the export is "
            "wrong; report the model architecture and opset"
        )
    return agree
