"""`seg-ros eval MODEL --data DIR --split val`: mIoU of a model file on a labelled split.

Runs the model through ``Segmenter(open_engine(...))`` (pre-processing per the model card:
resize to the card's input size, RGB, /255, (x - mean) / std, NCHW; labels back to the frame
size with nearest), prints a per-class IoU table and writes JSON + a confusion-matrix PNG.
No torch needed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    from seg_ros.train.data import default_data_dir

    p.add_argument("model", help="model file (.onnx with card, or engine + sidecar)")
    p.add_argument("--data", default=str(default_data_dir()), help="dataset root")
    p.add_argument("--split", default="val")
    p.add_argument("--json", default=None, help="write figures here (+ confusion PNG beside)")
    p.add_argument("--backend", default="auto",
                   help="auto (by file type: .pt -> torch) | onnxruntime | tensorrt | torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = runtime's)")
    p.add_argument("--limit", type=int, default=None, help="only the first N frames")


def evaluate_model(model: str | Path, data: str | Path, split: str = "val",
                   backend: str = "auto", device: str = "cpu", threads: int = 0,
                   limit: int | None = None, progress: bool = True) -> dict:
    """Confusion matrix + summary of ``model`` on ``data/split`` (frames in file order)."""
    from tqdm import tqdm

    from seg_ros import metrics
    from seg_ros.engines import open_engine
    from seg_ros.errors import ConfigError
    from seg_ros.segmenter import Segmenter
    from seg_ros.train.data import find_dataset_spec, load_pair, pair_files, split_dirs

    spec = find_dataset_spec(data)
    seg = Segmenter(open_engine(model, backend=backend, device=device, threads=threads))
    model_card, card = seg.model_card, seg.card
    if model_card.num_classes != spec.num_classes:
        raise ConfigError(f"{model} predicts {model_card.num_classes} classes but {data} has "
                          f"{spec.num_classes}: evaluate on the dataset the model was trained on")
    groups = model_card.groups
    truth_lut = None if groups is None else np.array(groups.truth_table(), np.uint8)
    pairs = pair_files(*split_dirs(data, split))[:limit]
    meter = metrics.ConfusionMeter(card.num_classes,
                                   spec.ignore_index if groups is None else card.ignore_index)
    for img_path, lab_path in tqdm(pairs, desc=f"eval {split}", disable=not progress):
        rgb, lab = load_pair(img_path, lab_path, spec)
        if truth_lut is not None:
            lab = truth_lut[lab]
        meter.update(seg(rgb, want_confidence=False).labels, lab)
    cm = meter.compute()
    return {"model": str(model), "data": str(data), "split": split, "frames": len(pairs),
            **metrics.summary(cm, card.class_names), "confusion": cm.tolist(),
            "class_names": list(card.class_names)}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    res = evaluate_model(args.model, args.data, args.split, args.backend, args.device,
                         args.threads, args.limit)
    table = Table(title=f"{Path(args.model).name} on {args.split} ({res['frames']} frames)")
    table.add_column("class")
    table.add_column("IoU %", justify="right")
    for name, v in res["per_class_iou"].items():
        table.add_row(name, "-" if v is None else f"{100 * v:.2f}")
    console = Console()
    console.print(table)
    console.print(f"mIoU {100 * res['miou']:.2f} %  pixel acc {100 * res['pixel_accuracy']:.2f} %"
                  f"  mean acc {100 * res['mean_accuracy']:.2f} %  FWIoU "
                  f"{100 * res['fw_iou']:.2f} %")
    if args.json:
        from seg_ros.train.plots import plot_confusion

        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1) + "\n")
        png = out.with_name(out.stem + "_confusion.png")
        plot_confusion(np.array(res["confusion"]), res["class_names"], png,
                       title=f"{Path(args.model).name} on {args.split}: truth -> prediction")
        console.print(f"wrote {out} and {png}")
    return 0
