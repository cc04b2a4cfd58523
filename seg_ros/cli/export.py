"""`seg-ros export CKPT --out model.onnx`: checkpoint -> self-describing ONNX (labels head).

Rebuilds the architecture named in the checkpoint, embeds the model card with provenance
(dataset, training command, seed, epochs, wall time, val figures) and verifies the file
against PyTorch with onnxruntime.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="best.pt / last.pt written by `seg-ros train`")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--name", default=None, help="model name in the card (default: dataset)")
    p.add_argument("--input-size", default=None,
                   help="HxW the graph takes (default: the training crop, e.g. 360x480)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--batch", default="1",
                   help="frames per engine call: 1 (default), a fixed N, or 'dynamic' (any N); "
                        "a node with several cameras runs their frames in one call")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seg_ros.errors import ConfigError
    from seg_ros.model_card import ModelCard
    from seg_ros.train.checkpoint import load_checkpoint, model_from_checkpoint
    from seg_ros.train.export import export_onnx

    ckpt = load_checkpoint(args.checkpoint)
    card = ModelCard.from_dict(ckpt["card"], source=f"{args.checkpoint} card")
    overrides: dict = {}
    if args.name:
        overrides["name"] = args.name
    if args.input_size:
        try:
            overrides["input_size"] = tuple(int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--input-size {args.input_size!r} must be HxW") from None
    cfg = ckpt["config"]
    history = ckpt.get("history") or []
    val = ckpt.get("val") or {}
    card = ModelCard.from_dict({**card.to_dict(), **overrides}).with_provenance(
        dataset=ckpt["dataset"]["name"], dataset_path=cfg.get("data"),
        training_split="train", selection_split="val",
        training_command=cfg.get("command"), seed=cfg.get("seed"),
        arch=ckpt["arch"], arch_options=ckpt["arch_options"], loss=cfg.get("loss"),
        epochs=int(ckpt["epoch"]), planned_epochs=cfg.get("epochs"),
        steps=int(ckpt["step"]), wall_time_s=round(float(ckpt.get("wall_time_s", 0.0)), 1),
        val_miou=val.get("miou"), val_pixel_accuracy=val.get("pixel_accuracy"),
        val_per_class_iou=val.get("per_class_iou"), checkpoint=Path(args.checkpoint).name,
        history_epochs=len(history) or None)
    net = model_from_checkpoint(ckpt)
    out = export_onnx(net, card, args.out, opset=args.opset, batch=parse_batch(args.batch))
    size = out.stat().st_size / 1e6
    miou = f"{100 * val['miou']:.2f} %" if val.get("miou") is not None else "n/a"
    print(f"wrote {out} ({size:.1f} MB, {ckpt['arch']}, input {card.input_size}, "
          f"val mIoU at export {miou})")
    return 0


def parse_batch(text: str) -> int:
    """``--batch`` -> frames per call (0 = dynamic); ConfigError naming the accepted forms."""
    from seg_ros.errors import ConfigError

    if text.strip().lower() == "dynamic":
        return 0
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise ConfigError(f"--batch {text!r}: give a batch size N >= 1 or 'dynamic'")
    return n
