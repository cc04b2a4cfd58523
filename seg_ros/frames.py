"""Folders of camera frames on disk: which files are frames, and reading one as RGB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seg_ros.errors import ConfigError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def list_images(path: str | Path, option: str = "") -> list[Path]:
    """The frames in folder ``path`` sorted by name (or ``[path]`` for one image file).

    ``option`` names the command-line option the path came from, for the error message.
    """
    path = Path(path)
    where = f"{option} {path}".strip()
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return [path]
    if not path.is_dir():
        raise ConfigError(f"{where} is neither an image nor a folder of images: check the path")
    images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ConfigError(f"{where} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}): "
                          "point it at a folder of frames")
    return images


def read_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image file; ConfigError naming the file when unreadable."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConfigError(
            f"{path} is not a readable image: remove it from the folder or re-copy it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
