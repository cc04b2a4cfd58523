"""`seg-ros info MODEL`: print the model card a file carries, or, for a model without one, its
inputs and outputs and the `seg-ros card` command that makes it usable (exit status 1)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seg_ros.model_card import ModelCard, ModelCardError, read_card


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (.onnx, or .engine/.pt with a JSON sidecar)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")


def run(args: argparse.Namespace) -> int:
    try:
        card = read_card(args.model)
    except ModelCardError as e:
        if "has no model card" not in str(e) or not Path(args.model).is_file():
            raise
        return _print_cardless(Path(args.model))
    if args.json:
        print(card.to_json())
        return 0
    _print_card(card, args.model)
    return 0


def _print_card(card: ModelCard, model: str) -> None:
    h, w = card.input_size
    print(f"model        {card.name}  ({model})")
    scale = "pixel/255" if abs(card.scale * 255 - 1) < 1e-9 else f"pixel x {card.scale:g}"
    shape = "x".join(map(str, card.input_shape()))
    print(f"input        {h}x{w} {card.channel_order}, {card.input_layout.upper()} ({shape}), "
          f"{card.resize}; ({scale} - mean) / std, mean {card.mean}, std {card.std}")
    print(f"output       {card.output!r}: {card.output_kind}"
          + (f" {card.layout.upper()}" if card.output_kind in ("logits", "probabilities")
             else "") + (f", threshold {card.threshold}" if card.output_kind == "sigmoid"
                         or (card.output_kind == "logits" and card.num_classes == 2) else ""))
    if card.output_kind == "labels":
        print("confidence   " + _labels_confidence(model))
    print(f"classes      {card.num_classes}" + (f", ignore index {card.ignore_index}"
                                                 if card.ignore_index is not None else ""))
    _print_classes(card)
    if card.groups is not None:
        grouped = card.grouped()
        print(f"groups       {grouped.num_classes} (what the node publishes)")
        _print_classes(grouped, members=card)
    for key, value in card.provenance.items():
        shown = json.dumps(value) if not isinstance(value, str) else value
        print(f"{key:<12} {shown}")


def _print_classes(card: ModelCard, members: ModelCard | None = None) -> None:
    for i, (name, color) in enumerate(zip(card.class_names, card.colors)):
        floor = "  floor" if i in card.traversable else ""
        of = ""
        if members is not None and members.groups is not None:
            of = "  <- " + ", ".join(n for n, g in zip(members.class_names,
                                                        members.groups.of_class) if g == i)
        print(f"  {i:>3} {name:<16} rgb{tuple(color)}{floor}{of}")


def _labels_confidence(model: str) -> str:
    """Whether a label-map model also gives a confidence image (a 'confidence' output)."""
    if not model.endswith(".onnx"):
        return "from a 'confidence' output when the engine has one"
    from seg_ros.modelprep.inspect import ModelProbe

    names = [o.name for o in ModelProbe(model).outputs]
    return ("from the graph's 'confidence' output" if "confidence" in names else
            "none: the argmax is in the graph and no scores are output")


def _print_cardless(model: Path) -> int:
    from seg_ros.modelprep.inspect import ModelProbe

    probe = ModelProbe(model)
    print(f"{model} has no model card; what the graph shows:")
    for t in probe.inputs:
        print(f"  input   {t.describe()}  ({probe.input_layout().upper()})")
    for t in probe.outputs:
        print(f"  output  {t.describe()}")
    cmd = f"seg-ros card {model} --classes CLASSES.txt"
    if probe.static_size(probe.input_layout()) is None:
        cmd += " --input-size HxW"
    if len(probe.outputs) > 1:
        cmd += " --output NAME"
    cmd += f" --out {model.with_name(model.stem + '.carded.onnx')}" if probe.kind == "onnx" else ""
    print("make it usable with (add --mean/--std/--scale unless it takes ImageNet-normalised "
          f"0..1 RGB):\n  {cmd}")
    return 1
