"""Export a trained network to a self-describing ONNX file.

The exported graph takes ``input`` (1, 3, H, W) float32, already normalised per the card, and
ends in argmax so the runtime does no per-pixel work in Python: outputs ``labels`` (1, H, W)
uint8 class ids and ``confidence`` (1, H, W) float32 max softmax, both at the card's input size.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seg_ros.errors import ConfigError, EngineError
from seg_ros.model_card import ModelCard, embed_in_onnx

INPUT_NAME = "input"
OUTPUT_NAMES = ("labels", "confidence")


class LabelsHead(nn.Module):
    """Wraps a logits network: bilinear upsample to the input size, argmax and max-softmax."""

    def __init__(self, net: nn.Module, card: ModelCard) -> None:
        super().__init__()
        self.net = net
        self.label_dtype = torch.uint8 if card.num_classes <= 255 else torch.int32
        # A constant output size keeps the graph static (no Shape ops): simpler for TensorRT.
        self.size = tuple(int(v) for v in card.input_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(x)
        if tuple(logits.shape[-2:]) != self.size:
            logits = F.interpolate(logits, size=self.size, mode="bilinear", align_corners=False)
        # max softmax = 1 / sum_c exp(l_c - max_c l): one Exp pass, no Softmax over the channel
        # axis (onnxruntime's channel-axis Softmax transposes and costs ~20 ms at 360x480).
        top, labels = logits.max(dim=1, keepdim=True)
        confidence = torch.reciprocal(torch.exp(logits - top).sum(dim=1))
        return labels.squeeze(1).to(self.label_dtype), confidence


def export_onnx(
    net: nn.Module,
    card: ModelCard,
    out: str | Path,
    opset: int = 17,
    verify: bool = True,
    batch: int = 1,
) -> Path:
    """Export ``net`` (logits, N x C x h x w) with the card embedded; verify against PyTorch.

    ``batch``: frames per engine call the graph takes: 1 (default), a fixed N, or 0 for a
    dynamic batch dimension (any N; the node stacks the frames of several cameras into one call).

    Verification runs the same random normalised input through PyTorch and onnxruntime and
    requires >= 99.9 % label agreement (ties on near-equal logits may flip a few pixels).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    logits_only = card.output_kind == "logits"
    head = net.eval() if logits_only else LabelsHead(net, card).eval()
    output_names = ["logits"] if logits_only else list(OUTPUT_NAMES)
    h, w = card.input_size
    if batch < 0:
        raise ConfigError(f"batch = {batch}: give 1, a fixed batch size N > 1, or 0 for dynamic")
    example = torch.randn(batch or 2, 3, h, w, generator=torch.Generator().manual_seed(0))
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
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            head, (example,), str(tmp), input_names=[INPUT_NAME], output_names=output_names,
            opset_version=opset, dynamo=False,
            dynamic_axes=None if batch else {n: {0: "batch"} for n in (INPUT_NAME, *output_names)},
        )
    model = onnx.load(str(tmp))
    tmp.unlink()
    if not batch:
        _fix_output_dims(head, example, model)
    embed_in_onnx(card.with_provenance(export_opset=opset), model)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    if verify:
        verify_onnx(head, out, example)
    return out


def _fix_output_dims(head: nn.Module, example: torch.Tensor, model: Any) -> None:
    """With a dynamic batch the exporter leaves the outputs' other dims symbolic; they do not
    depend on the batch, so they are written as the sizes PyTorch gives (TensorRT and the
    output checks then see (N, h, w) with only N dynamic)."""
    with torch.no_grad():
        ref = head(example)
    shapes = [ref.shape] if isinstance(ref, torch.Tensor) else [r.shape for r in ref]
    for out, shape in zip(model.graph.output, shapes):
        for dim, size in list(zip(out.type.tensor_type.shape.dim, shape))[1:]:
            dim.dim_value = int(size)


def export_torchscript(net: nn.Module, card: ModelCard, out: str | Path) -> Path:
    """Trace ``net`` with the labels head to TorchScript (``out``) plus its JSON card sidecar."""
    from seg_ros.model_card import write_sidecar

    out = Path(out)
    head = LabelsHead(net, card).eval()
    example = torch.zeros(1, 3, *card.input_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(head, example)
    traced.save(str(out))
    write_sidecar(card, out)
    return out


def verify_onnx(head: nn.Module, path: Path, example: torch.Tensor) -> float:
    """Label agreement (fraction) between PyTorch and onnxruntime on ``example``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {INPUT_NAME: example.numpy()})
    with torch.no_grad():
        ref = head(example)
    if isinstance(ref, torch.Tensor):  # logits graph: compare argmax and values
        ref_labels, ref_conf = ref.argmax(1).numpy(), ref.numpy()
        labels, conf = got[0].argmax(1), got[0]
    else:
        ref_labels, ref_conf = ref[0].numpy(), ref[1].numpy()
        labels, conf = got
    agree = float(np.mean(labels == ref_labels))
    if agree < 0.999 or not np.allclose(conf, ref_conf, atol=1e-3):
        path.unlink(missing_ok=True)
        raise EngineError(
            f"exported ONNX disagrees with PyTorch ({agree:.4%} labels equal): the export is "
            "wrong; report the model architecture and opset"
        )
    return agree
