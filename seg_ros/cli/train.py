"""`seg-ros train`: train a segmentation network (run folder with checkpoints, metrics, plots).

Multi-GPU / multi-node: ``torchrun --nproc-per-node N -m seg_ros.cli train ...``.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from seg_ros.train.data import default_data_dir

    p.add_argument("--data", default=str(default_data_dir()),
                   help="dataset root (CamVid layout or <split>/images + <split>/labels); "
                        "default $SEG_ROS_CAMVID or ../shared/datasets/camvid")
    p.add_argument("--out", required=True, help="run folder (checkpoints, metrics.json, PNGs)")
    p.add_argument("--arch", default="mnv2_fpn", help="mnv2_fpn | mnv2_lraspp")
    p.add_argument("--arch-options", default="output_stride=32,width=96",
                   help="key=value,... passed to the architecture builder")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16, help="global batch (split over GPUs)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--schedule", default="poly", choices=["poly", "onecycle"])
    p.add_argument("--warmup-epochs", type=float, default=2.0)
    p.add_argument("--loss", default="ohem:1.0,dice:0.5",
                   help="weighted sum, e.g. wce:1.0,dice:0.5 (ce, wce, ohem, dice, focal)")
    p.add_argument("--encoder-weights", default="imagenet", help="imagenet | none | PATH")
    p.add_argument("--crop", default="360x480", help="training crop HxW in pixels")
    p.add_argument("--base-scale", type=float, default=1.0,
                   help="native input = frame x this: the 0.5-2.0 scale augmentation is "
                        "multiplied by it and val frames are resized by it (labels scored at "
                        "full size), e.g. --crop 288x384 --base-scale 0.8 for 360x480 CamVid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--workers", type=int, default=4, help="data-loader processes")
    p.add_argument("--eval-every", type=int, default=5, help="epochs between val evaluations")
    p.add_argument("--no-amp", action="store_true", help="disable bf16 autocast on CUDA")
    p.add_argument("--resume", action="store_true", help="continue OUT/last.pt")
    p.add_argument("--limit", type=int, default=None, help="use only N train frames (smoke)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="minutes: after 5 epochs, cut --epochs so the run fits (poly adapts)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimiser steps")


def run(args: argparse.Namespace) -> int:
    from seg_ros.errors import ConfigError
    from seg_ros.train.loop import TrainConfig, train
    from seg_ros.train.models import parse_arch_options

    try:
        h, w = (int(v) for v in args.crop.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--crop {args.crop!r} must be HxW, e.g. 360x480") from None
    if not 0.05 <= args.base_scale <= 4.0:
        raise ConfigError(f"--base-scale {args.base_scale} is out of range: use e.g. 0.8 "
                          "(network input 0.8 x the frame size)")
    cfg = TrainConfig(
        data=args.data, out=args.out, arch=args.arch,
        arch_options=parse_arch_options(args.arch_options), epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        optimizer=args.optimizer, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
        loss=args.loss, encoder_weights=args.encoder_weights, crop=(h, w),
        base_scale=args.base_scale,
        seed=args.seed,
        device=args.device, workers=args.workers, eval_every=args.eval_every,
        amp=not args.no_amp, resume=args.resume, limit=args.limit, max_steps=args.max_steps,
        time_limit=args.time_limit,
        command="seg-ros " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    result = train(cfg)
    if result.get("best"):
        print(f"best val mIoU {100 * result['best']['miou']:.2f} % at epoch "
              f"{result['best']['epoch']}; run folder {args.out}")
    return 0
