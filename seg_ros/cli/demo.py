"""`seg-ros demo` (`make demo`): the shipped CamVid demo bag through a real node -> figures + PNGs.

Uses ``data/camvid_demo_bag`` (30 CamVid val frames, JPEG, with ground truth); when it is missing
it is built from the CamVid folder in $SEG_ROS_CAMVID. Runs ``bag eval`` in lockstep with the
default model and config/camvid.yaml's node parameters (its camera_pose and grid.* make the node
publish ~/floor_grid: the sheet's last column, a top view with forward up) and writes the report,
the contact sheet and the node's log (and with --record its outputs) under ``out/demo/`` (ignored
by git).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from seg_ros.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO_BAG = REPO / "data" / "camvid_demo_bag"
DEFAULT_MODEL = REPO / "models" / "camvid.onnx"
# CamVid node parameters: its camera_pose and grid.* make the node publish ~/floor_grid, shown in
# the contact sheet's last column.
DEMO_PARAMS = REPO / "config" / "camvid.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model file (default: %(default)s)")
    p.add_argument("--bag", default=str(DEMO_BAG), help="bag to evaluate (default: %(default)s)")
    p.add_argument("--out", default=str(REPO / "out" / "demo"), help="output folder")
    p.add_argument("--rate", type=float, help="replay at X times real time (default: lockstep)")
    p.add_argument("--record", action="store_true",
                   help="also record all node outputs to out/demo/node_outputs (the node then "
                   "computes and ships overlay/colour/confidence too: latency is not comparable)")


def camvid_dir() -> Path:
    env = os.environ.get("SEG_ROS_CAMVID")
    return Path(env) if env else REPO.parent / "shared" / "datasets" / "camvid"


def ensure_demo_bag(bag: Path) -> Path:
    """The demo bag, built from CamVid val (30 frames, every 3rd) when it is not there."""
    if (bag / "metadata.yaml").is_file():
        return bag
    src = camvid_dir()
    if not (src / "val").is_dir():
        raise ConfigError(
            f"demo bag {bag} is missing and CamVid is not at {src}: restore the bag with "
            "`git checkout data/camvid_demo_bag`, or set SEG_ROS_CAMVID to the CamVid folder"
        )
    from seg_ros.bag.make import make_bag

    print(f"building {bag} from {src}")
    make_bag(src / "val", bag, src / "valannot", compressed=True, limit=30, stride=3,
             rate=10.0, start_ns=1_700_000_000 * 10**9)
    return bag


def run(args: argparse.Namespace) -> int:
    from seg_ros.bag.evaluate import evaluate_bag, print_report

    model = Path(args.model)
    if not model.is_file():
        raise ConfigError(
            f"model {model} does not exist: train/export it (models/camvid.onnx) or pass "
            "--model PATH"
        )
    bag = ensure_demo_bag(Path(args.bag))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    outputs = out / "node_outputs"
    if outputs.exists():
        shutil.rmtree(outputs)
    report = evaluate_bag(bag, model, out_bag=outputs if args.record else None, rate=args.rate,
                          png=out / "contact_sheet.png", log_dir=out,
                          params_file=DEMO_PARAMS if DEMO_PARAMS.is_file() else None)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print_report(report)
    print(f"report: {out / 'report.json'}\nnode log: {report['node']['log']}")
    return 0
