"""`seg-ros bag make|play|record|eval`: rosbag2 tools (rosbags + rclpy)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bag_command", metavar="ACTION", required=True)

    m = sub.add_parser("make", help="folder of frames (+ label maps) -> rosbag2",
                       description="Write a folder of frames (+ ground-truth label maps, + camera "
                       "calibration) as a rosbag2.")
    m.add_argument("--images", required=True, help="folder of frames (sorted by file name)")
    m.add_argument("--labels", help="folder of label maps (8/16-bit class ids), paired by name")
    m.add_argument("--camera-info", help="camera_calibration YAML (default: 60 deg pinhole)")
    m.add_argument("--depth", help="folder of 16-bit PNG depth maps (millimetres, 0 = no "
                   "return) registered to the frames, paired by name -> {prefix}/depth/image_raw")
    m.add_argument("--depth-camera-info", help="camera_calibration YAML of the depth maps "
                   "(needed when their size differs from the frames')")
    m.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    m.add_argument("--compressed", action="store_true",
                   help="CompressedImage: JPEG frames, lossless PNG labels")
    m.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    m.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    m.add_argument("--frame-id", default="camera")
    m.add_argument("--topic-prefix", default="/camera")
    m.add_argument("--jpeg-quality", type=int, default=90)
    m.add_argument("--limit", type=int, help="at most this many frames")
    m.add_argument("--stride", type=int, default=1, help="keep every N-th frame")
    m.add_argument("--start", type=float,
                   help="stamp of the first frame, seconds since the epoch (default: now)")

    pl = sub.add_parser("play", help="publish a bag onto live topics",
                        description="Publish a bag onto live topics with its timing.")
    pl.add_argument("bag")
    pl.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1)")
    pl.add_argument("--loop", action="store_true")
    pl.add_argument("--clock", type=float, nargs="?", const=40.0, default=None, metavar="HZ",
                    help="publish /clock (default 40 Hz when given)")
    pl.add_argument("--topics", nargs="+", help="only these topics")
    pl.add_argument("--delay", type=float, default=0.5, help="seconds before the first message")
    pl.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                    help="then wait up to S seconds until every topic has a subscriber")

    r = sub.add_parser("record", help="record live topics into a bag",
                       description="Record live topics into a rosbag2 (Ctrl-C to stop).")
    r.add_argument("topics", nargs="+")
    r.add_argument("--out", required=True)
    r.add_argument("--duration", type=float, help="seconds (default: until Ctrl-C)")
    r.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")

    e = sub.add_parser("eval", help="replay a bag through a real node: mIoU, latency, drops",
                       description="Start a real segmentation node, replay the bag's frames "
                       "into it over topics and score its labels against the bag's ground truth.")
    e.add_argument("bag")
    e.add_argument("--model", default="models/camvid.onnx")
    e.add_argument("--out", dest="out_bag", help="record the node's outputs into this bag")
    e.add_argument("--json", help="write the report as JSON here")
    e.add_argument("--png", help="write a contact sheet PNG here")
    e.add_argument("--rate", type=float,
                   help="replay at this factor of real time and count drops (default: lockstep)")
    e.add_argument("--image-topic", help="image topic in the bag (default: the only one)")
    e.add_argument("--labels-topic", help="ground-truth topic (default: *labels_gt*)")
    e.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for one frame's labels in lockstep")
    e.add_argument("--node-arg", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter (repeatable)")
    e.add_argument("--params-file", metavar="YAML",
                   help="node parameters (e.g. config/camvid.yaml: its camera_pose and grid.* "
                   "give the sheet a floor-grid column); --node-arg values override it")


def run(args: argparse.Namespace) -> int:
    return {"make": _make, "play": _play, "record": _record, "eval": _eval}[args.bag_command](args)


def _make(args: argparse.Namespace) -> int:
    from seg_ros.bag.make import make_bag

    res = make_bag(args.images, args.out, labels=args.labels, camera_info=args.camera_info,
                   compressed=args.compressed, rate=args.rate, storage=args.storage,
                   frame_id=args.frame_id, topic_prefix=args.topic_prefix,
                   start_ns=None if args.start is None else round(args.start * 1e9),
                   jpeg_quality=args.jpeg_quality, limit=args.limit, stride=args.stride,
                   depth=args.depth, depth_camera_info=args.depth_camera_info)
    print(f"wrote {res.frames} frames to {res.out} ({res.size_bytes / 1e6:.2f} MB, "
          f"{args.storage}): " + ", ".join(f"{t} [{ty.split('/')[-1]}]"
                                           for t, ty in res.topics.items()))
    return 0


def _play(args: argparse.Namespace) -> int:
    from seg_ros.bag.play import play_bag

    res = play_bag(args.bag, rate=args.rate, loop=args.loop, clock_hz=args.clock,
                   topics=args.topics, delay=args.delay,
                   wait_for_subscribers=args.wait_for_subscribers)
    print(f"published {sum(res.published.values())} messages in {res.wall_s:.1f} s "
          f"({res.loops} loop(s)" + (", interrupted" if res.interrupted else "") + ")")
    return 0


def _record(args: argparse.Namespace) -> int:
    from seg_ros.bag.record import record_bag

    res = record_bag(args.topics, args.out, duration=args.duration, storage=args.storage)
    print(f"wrote {sum(res.counts.values())} messages to {res.out}: "
          + (", ".join(f"{t} x{n}" for t, n in res.counts.items()) or "none"))
    for t in res.never_seen:
        print(f"warning: {t} never appeared in the graph")
    for t in res.skipped:
        print(f"warning: {t} not recorded: its type is neither a ROS 2 Kilted message nor in "
              "seg_ros's msg/ (add its .msg definition to the typestore to record it)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from seg_ros.bag.evaluate import evaluate_bag, print_report

    report = evaluate_bag(args.bag, args.model, out_bag=args.out_bag, rate=args.rate,
                          png=args.png, image_topic=args.image_topic,
                          labels_topic=args.labels_topic, timeout=args.timeout,
                          node_params=args.node_arg, params_file=args.params_file)
    print_report(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        print(f"report: {os.path.abspath(args.json)}")
    return 0
