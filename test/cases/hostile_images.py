"""Hostile compressed images, made for real: a PNG bomb, a JPEG with an EXIF orientation tag,
a truncated JPEG (cases.hostile_compressed throws them at a live node)."""

from __future__ import annotations

import zlib

import numpy as np


def png_bomb(side: int = 20000) -> bytes:
    """A real grey PNG of side x side pixels (400 MB decoded for 20000) that is ~400 KB."""
    row = b"\x00" * (side + 1)  # filter byte + pixels
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(side)) + z.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))

    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg(rgb: np.ndarray, exif_orientation: int | None = None) -> bytes:
    """A JPEG of ``rgb``, optionally with an EXIF orientation tag (6 = rotate 90 degrees)."""
    import io

    from PIL import Image as PilImage

    out = io.BytesIO()
    img = PilImage.fromarray(rgb)
    if exif_orientation is None:
        img.save(out, "JPEG", quality=90)
    else:
        exif = PilImage.Exif()
        exif[0x0112] = exif_orientation
        img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def corrupt_jpeg(rgb: np.ndarray) -> bytes:
    """Half a JPEG with a fake end-of-image marker: libjpeg 'decodes' it with a warning."""
    data = jpeg(rgb)
    return data[: len(data) // 2] + b"\xff\xd9"
