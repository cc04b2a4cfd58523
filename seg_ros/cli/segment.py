"""`seg-ros segment MODEL IMAGE_OR_DIR --out DIR`: label, colour and overlay PNGs per frame."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from tqdm import tqdm

from seg_ros.engines import backend_names, open_engine
from seg_ros.errors import ConfigError
from seg_ros.frames import list_images
from seg_ros.render import Palette, legend, write_rgb_png
from seg_ros.segmenter import Segmenter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--backend", default="auto", choices=backend_names())
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="intra-op CPU threads (0 = auto)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1")


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha {args.alpha} is outside 0..1")
    images = list_images(Path(args.input))
    engine = open_engine(args.model, args.backend, args.device, args.threads)
    segmenter = Segmenter(engine)
    palette = Palette.from_card(segmenter.card)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rgb_png(out / "legend.png", legend(segmenter.card))
    for path in tqdm(images, desc="segment", unit="frame"):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            tqdm.write(f"skipped {path}: not a readable image")
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        result = segmenter(rgb, want_confidence=False)
        mask = palette.color_mask(result.labels)
        cv2.imwrite(str(out / f"{path.stem}_labels.png"), result.labels)
        write_rgb_png(out / f"{path.stem}_color.png", mask)
        write_rgb_png(out / f"{path.stem}_overlay.png",
                      palette.overlay(rgb, result.labels, args.alpha, mask))
    print(f"wrote {len(images)} frames to {out}")
    return 0
