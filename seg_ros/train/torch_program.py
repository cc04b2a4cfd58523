"""The shipped ONNX model as a TorchScript program, for gpu-check's torch backend on CUDA.

The repository ships the CamVid model as ONNX only (its training checkpoint is not kept). Its
card records the architecture (``arch``, ``arch_options``); the exporter folded every
BatchNorm into the Conv before it and named each Conv node after its module path
(``/net/encoder/features.0/features.0.0/Conv`` -> ``net.encoder.features.0.0``). So the
network is rebuilt with :func:`seg_ros.train.models.build_model`, each Conv takes its folded
weight and bias from the ONNX, each BatchNorm becomes an identity, and the labels head is
traced (:func:`seg_ros.train.export.export_torchscript`). :func:`torch_program` checks that
every Conv was matched; gpu-check then compares its labels with onnxruntime's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seg_ros.errors import ConfigError


def _folded_weights(model: Any) -> dict[str, tuple[Any, Any]]:
    """module path -> (weight, bias or None) of every Conv node of the ONNX graph."""
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        convs[module_path(node.name)] = (inits[node.input[1]],
                                         inits.get(node.input[2]) if len(node.input) > 2
                                         else None)
    return convs


def module_path(node_name: str) -> str:
    """'/net/encoder/features.0/features.0.0/Conv' -> 'net.encoder.features.0.0': the scopes
    of the exporter, where a scope extending the one before it (a Sequential's child) replaces
    it."""
    parts: list[str] = []
    for scope in node_name.strip("/").split("/")[:-1]:
        if parts and scope.startswith(parts[-1] + "."):
            parts[-1] = scope
        else:
            parts.append(scope)
    return ".".join(parts)


def rebuild(onnx_path: str | Path) -> Any:
    """``LabelsHead`` of the network in ``onnx_path`` with its (BN-folded) weights, eval mode."""
    import onnx
    import torch
    from torch import nn

    from seg_ros.model_card import read_card
    from seg_ros.train.export import LabelsHead
    from seg_ros.train.models import build_model

    card = read_card(onnx_path)
    arch = card.provenance.get("arch")
    if not arch:
        raise ConfigError(f"{onnx_path}: its card records no arch: it cannot be rebuilt in torch")
    net = build_model(str(arch), card.num_classes, **dict(card.provenance.get("arch_options")
                                                         or {}))
    head = LabelsHead(net, card).eval()
    weights = _folded_weights(onnx.load(str(onnx_path)))
    convs = {name: m for name, m in head.named_modules() if isinstance(m, nn.Conv2d)}
    if set(convs) != set(weights):
        raise ConfigError(f"{onnx_path}: its Conv nodes do not name the {arch} modules "
                          f"({len(set(convs) ^ set(weights))} differ): re-export it")
    with torch.no_grad():
        for name, conv in convs.items():
            w, b = weights[name]
            conv.weight.copy_(torch.tensor(w))
            conv.bias = nn.Parameter(torch.tensor(b) if b is not None
                                     else torch.zeros(w.shape[0]))
    for name, module in list(head.named_modules()):
        if isinstance(module, nn.BatchNorm2d):  # folded into the Conv before it
            parent, _, child = name.rpartition(".")
            setattr(head.get_submodule(parent) if parent else head, child, nn.Identity())
    return head.eval()


def torch_program(onnx_path: str | Path, out: str | Path) -> Path:
    """TorchScript of ``onnx_path`` at ``out`` (with its card sidecar), rebuilt once."""
    from seg_ros.model_card import read_card
    from seg_ros.train.export import export_torchscript

    out = Path(out)
    if out.is_file() and out.stat().st_mtime >= Path(onnx_path).stat().st_mtime:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    head = rebuild(onnx_path)
    return export_torchscript(head.net, read_card(onnx_path), out)
