"""Folders of camera frames on disk: which files are frames, and reading one as RGB."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seg_ros.codec import DEFAULT_MAX_PIXELS, compressed_size
from seg_ros.errors import CodecError, ConfigError

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


MAX_FRAME_PIXELS = DEFAULT_MAX_PIXELS  # 50 MP: above every real camera (see seg_ros.codec)
_HEAD_BYTES = 1 << 18  # enough for a PNG IHDR, and a JPEG's SOF behind its EXIF / ICC blocks


def image_file_size(path: str | Path, max_pixels: int = MAX_FRAME_PIXELS) -> tuple[int, int]:
    """(height, width) of an image file from its header alone: an empty file, one that is not
    an image, or one above ``max_pixels`` is refused (one ConfigError line) before anything
    is decoded (a 30000x30000 PNG of 2.6 MB decodes to 2.7 GB)."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ConfigError(f"{path} is an empty file, not an image: re-copy it or leave it out")
    with path.open("rb") as f:
        head = np.frombuffer(f.read(_HEAD_BYTES), np.uint8)
    try:
        w, h = compressed_size(head, path.suffix)
    except CodecError:
        w, h = _pillow_size(path)
    if w * h > max_pixels:
        raise ConfigError(f"{path} is {w}x{h} = {w * h / 1e6:.0f} MP, above the limit of "
                          f"{max_pixels / 1e6:.0f} MP an image may have here: downscale it "
                          "first (e.g. cv2.resize)")
    if w <= 0 or h <= 0:
        raise ConfigError(f"{path} has an empty image header ({w}x{h}): re-copy it")
    return h, w


def _pillow_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header of any format Pillow knows (BMP, TIFF, WebP; a JPEG
    whose SOF lies past the first bytes read); ConfigError when it is not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # lazy: reads the header, decodes nothing
            return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError:
        raise ConfigError(f"{path} is over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP, "
                          f"above the limit of {MAX_FRAME_PIXELS / 1e6:.0f} MP an image may "
                          "have here: downscale it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ConfigError(f"{path} is not an image file (PNG, JPEG, BMP, TIFF, WebP): leave it "
                          "out or re-copy it") from None


def read_rgb(path: str | Path, max_pixels: int = MAX_FRAME_PIXELS) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image file, its size checked from the header first;
    ConfigError naming the file when unreadable or too large."""
    image_file_size(path, max_pixels)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConfigError(
            f"{path} is not a readable image: remove it from the folder or re-copy it")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
