"""`seg-ros info MODEL`: print the model card a file carries."""

from __future__ import annotations

import argparse
import json

from seg_ros.model_card import read_card


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file (.onnx, or .engine/.pt with a JSON sidecar)")
    p.add_argument("--json", action="store_true", help="print the card as JSON")


def run(args: argparse.Namespace) -> int:
    card = read_card(args.model)
    if args.json:
        print(card.to_json())
        return 0
    h, w = card.input_size
    print(f"model        {card.name}  ({args.model})")
    print(f"input        {h}x{w} {card.channel_order}, mean {card.mean}, std {card.std}")
    print(f"output       {card.output_kind}")
    print(f"classes      {card.num_classes}" + (f", ignore index {card.ignore_index}"
                                                 if card.ignore_index is not None else ""))
    for i, (name, color) in enumerate(zip(card.class_names, card.colors)):
        floor = "  floor" if i in card.traversable else ""
        print(f"  {i:>3} {name:<16} rgb{tuple(color)}{floor}")
    for key, value in card.provenance.items():
        shown = json.dumps(value) if not isinstance(value, str) else value
        print(f"{key:<12} {shown}")
    return 0
