"""`seg-ros segment MODEL IMAGE_OR_DIR... --out DIR`: label, colour and overlay PNGs per frame.

Takes any number of image files and folders (shell globs expand to many); the outputs are named
after each image (``NAME_labels.png``, ``NAME_color.png``, ``NAME_overlay.png``), with the
folder's name in front where two inputs share a name."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
from tqdm import tqdm

from seg_ros.engines import backend_names, open_engine
from seg_ros.errors import ConfigError
from seg_ros.frames import image_file_size, list_images
from seg_ros.render import Palette, legend, write_rgb_png
from seg_ros.segmenter import Segmenter


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model file")
    p.add_argument("input", nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--backend", default="auto", choices=backend_names())
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="intra-op CPU threads (0 = auto)")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1")


def run(args: argparse.Namespace) -> int:
    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha {args.alpha} is outside 0..1")
    images = [img for item in args.input for img in list_images(Path(item))]
    for img in images:  # every header first: a bad or huge file is refused before any work
        image_file_size(img)
    stems = _output_stems(images)
    engine = open_engine(args.model, args.backend, args.device, args.threads)
    segmenter = Segmenter(engine)
    palette = Palette.from_card(segmenter.card)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_rgb_png(out / "legend.png", legend(segmenter.card))
    skipped: list[str] = []
    for path, stem in tqdm(list(zip(images, stems)), desc="segment", unit="frame"):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:  # a valid header over corrupt data
            skipped.append(f"{path}")
            tqdm.write(f"skipped {path}: its image data does not decode (truncated or corrupt)")
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        result = segmenter(rgb, want_confidence=False)
        mask = palette.color_mask(result.labels)
        cv2.imwrite(str(out / f"{stem}_labels.png"), result.labels)
        write_rgb_png(out / f"{stem}_color.png", mask)
        write_rgb_png(out / f"{stem}_overlay.png",
                      palette.overlay(rgb, result.labels, args.alpha, mask))
    done = len(images) - len(skipped)
    if skipped:
        raise ConfigError(f"wrote {done} of {len(images)} frames to {out}; {len(skipped)} did "
                          f"not decode (first: {skipped[0]}): re-copy them")
    print(f"wrote {done} frames to {out}")
    return 0


def _output_stems(images: list[Path]) -> list[str]:
    """Output name per image: its stem, or parent_stem where two images share a stem."""
    counts: dict[str, int] = {}
    for p in images:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [f"{p.parent.name}_{p.stem}" if counts[p.stem] > 1 else p.stem for p in images]
