"""`seg-ros`: one CLI, one module per subcommand (imported lazily so `seg-ros info` never loads
torch or rclpy). Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("seg_ros.cli.info", "print a model's card (or what a card-less model needs)"),
    "card": ("seg_ros.cli.card", "write or edit the model card of any segmentation model"),
    "segment": ("seg_ros.cli.segment", "segment images into label/colour/overlay PNGs"),
    "bag": ("seg_ros.cli.bag", "rosbag2 tools: make, play, record, eval (mIoU through a node)"),
    "demo": ("seg_ros.cli.demo", "the CamVid demo bag through a real node: mIoU, latency, PNGs"),
    "node": ("seg_ros.cli.node", "run the segmentation node (ros2 run seg_ros segmentation_node)"),
    "train": ("seg_ros.cli.train", "train a segmentation network (checkpoints, metrics, plots)"),
    "export": ("seg_ros.cli.export", "export a training checkpoint to ONNX with its model card"),
    "eval": ("seg_ros.cli.eval", "mIoU of a model on a dataset split (per-class IoU table)"),
    "build-engine": ("seg_ros.cli.build_engine", "build a TensorRT engine (fp32/fp16/int8) + card"),
    "quantize": ("seg_ros.cli.quantize", "int8 Q/DQ ONNX (CPU or TensorRT) or its fp16 graph"),
    "gpu-check": ("seg_ros.cli.gpu_check", "every GPU backend here, end to end (make gpu-check)"),
    "floor": ("seg_ros.cli.floor", "project a label image onto the floor: nav2 map.yaml + map.pgm"),
    "floor-map": ("seg_ros.cli.floor_map", "fuse label images along a path into one nav2 map"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="seg-ros",
        description="Semantic segmentation for ROS 2: the node, and the tools that make, "
                    "convert and evaluate its models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen subcommand's module is imported.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    command = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(command.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one clear line, not a traceback wall, for user errors
        from seg_ros.errors import is_user_error

        if not is_user_error(e):
            raise
        print(f"seg-ros {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
