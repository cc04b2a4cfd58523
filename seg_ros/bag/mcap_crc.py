"""Chunk checksums of MCAP files: written after the fact for bags rosbags writes (its writer
leaves every chunk's ``uncompressed_crc`` 0, "not computed"), and counted before a bag is
scored, so bytes corrupted inside a chunk fail rosbags' own check ("Chunk checksum mismatch")
instead of being scored silently. ``ros2 bag record`` (the mcap library) writes them itself.

MCAP layout (https://mcap.dev/spec): 8 magic bytes, then records ``op u8, length u64 LE,
body``; a Chunk (op 0x06) body is ``message_start_time u64, message_end_time u64,
uncompressed_size u64, uncompressed_crc u32, compression str (u32 length + bytes),
records_size u64, records``. ROS-free: plain file I/O and zlib's crc32.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"\x89MCAP0\r\n"
OP_CHUNK = 0x06
OP_FOOTER = 0x02
_CRC_AT = 24  # offset of uncompressed_crc in a Chunk body


@dataclass(frozen=True)
class ChunkCrcs:
    """How many chunks an MCAP file has, and how many carry a checksum."""

    chunks: int
    with_crc: int


def _chunks(f: BinaryIO) -> list[tuple[int, int, str]]:
    """(body offset, body length, compression) of every Chunk record, in file order."""
    out = []
    f.seek(len(MAGIC))
    while True:
        head = f.read(9)
        if len(head) < 9:
            break
        op, length = head[0], struct.unpack("<Q", head[1:])[0]
        start = f.tell()
        if op == OP_FOOTER:
            break
        if op == OP_CHUNK:
            f.seek(start + _CRC_AT + 4)
            (n,) = struct.unpack("<I", f.read(4))
            out.append((start, length, f.read(n).decode("ascii", "replace")))
        f.seek(start + length)
    return out


def count_crcs(path: str | Path) -> ChunkCrcs:
    """Chunks and checksummed chunks of the MCAP file ``path`` (headers read, data skipped)."""
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return ChunkCrcs(0, 0)
        chunks = _chunks(f)
        with_crc = 0
        for start, _, _ in chunks:
            f.seek(start + _CRC_AT)
            with_crc += struct.unpack("<I", f.read(4))[0] != 0
    return ChunkCrcs(len(chunks), with_crc)


def add_chunk_crcs(path: str | Path) -> int:
    """Write the checksum of every uncompressed chunk that has none; returns how many were
    written (a compressed chunk, which rosbags writes only with zstd storage, is left as is:
    its decompression already fails on most corruption)."""
    written = 0
    with open(path, "r+b") as f:
        if f.read(len(MAGIC)) != MAGIC:
            return 0
        for start, length, compression in _chunks(f):
            f.seek(start + _CRC_AT)
            if compression or struct.unpack("<I", f.read(4))[0] != 0:
                continue
            records_at = _CRC_AT + 4 + 4 + len(compression) + 8
            f.seek(start + records_at)
            crc = zlib.crc32(f.read(length - records_at))
            if crc == 0:  # 0 means "not computed" (one chunk in 2**32): leave it so
                continue
            f.seek(start + _CRC_AT)
            f.write(struct.pack("<I", crc))
            written += 1
    return written


def unchecked_note(bag: str | Path) -> str | None:
    """One line when chunks of the bag's MCAP files carry no checksum (corruption in them
    cannot be detected), else None. A sqlite3 (.db3) bag has no checksums at all."""
    p = Path(bag)
    files = sorted(p.glob("*.mcap")) if p.is_dir() else [p] if p.suffix == ".mcap" else []
    counts = [count_crcs(f) for f in files]
    chunks, checked = sum(c.chunks for c in counts), sum(c.with_crc for c in counts)
    if not files and p.is_dir() and any(p.glob("*.db3")):
        return (f"bag {p}: sqlite3 storage carries no checksums, so corrupt data in it cannot "
                "be detected (re-make it as MCAP: seg-ros bag make --storage mcap)")
    if checked < chunks:
        return (f"bag {p}: {chunks - checked} of {chunks} MCAP chunks carry no checksum, so "
                "corrupt data in them cannot be detected (`seg-ros bag make` and `ros2 bag "
                "record` write them)")
    return None
