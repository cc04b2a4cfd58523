"""The offline tools under hostile input: files that are huge once decoded, not images, empty,
of another encoding, of absurd values, or corrupted mid-file. Each is refused by the real CLI
in a subprocess with a non-zero exit and one line (no traceback), before allocating: the
child's peak RSS, read with os.wait4 (getrusage of that one child), stays under 1 GB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from foreign_models import tf2onnx_like, wide_output, zero_png
from test_floor_map import WORLD, cli_args, drive, write_drive

RSS_LIMIT = 1 << 30


def refused(args: list[str], *words: str) -> str:
    """Run the CLI; assert a non-zero exit, one stderr line holding ``words``, no traceback and
    a peak RSS under 1 GB; returns the line."""
    rc, _out, err, rss = run_measured(args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1 and "Traceback" not in err, (rc, err)
    for w in words:
        assert w in lines[0], lines[0]
    assert rss < RSS_LIMIT, f"peak RSS {rss / 2**20:.0f} MiB"
    return lines[0]


# The CLI runs as the grandchild of this test through a small launcher: a child forked from
# pytest itself inherits pytest's peak RSS in its rusage (Linux keeps the high-water mark of the
# address space it had before exec), which after hundreds of tests is above the limit measured.
LAUNCHER = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); "
            "_, status, usage = os.wait4(p.pid, 0); "
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss)); "
            "sys.exit(os.waitstatus_to_exitcode(status))")


def run_measured(args: list[str], timeout: float = 300.0) -> tuple[int, str, str, int]:
    """(exit status, stdout, stderr, peak RSS bytes) of `seg-ros ARGS`, the RSS from the
    rusage os.wait4 returns for the CLI process alone."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "maxrss"
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, str(rss_file), sys.executable,
                               "-m", "seg_ros.cli", *args], capture_output=True, text=True,
                              timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr, int(rss_file.read_text()) * 1024


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    carded = d / "m.carded.onnx"
    rc, _, err, _ = run_measured(["card", str(tf2onnx_like(d / "m.onnx", "logits")), "--out",
                                  str(carded)])
    assert rc == 0, err
    return carded


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    """A 30000 x 30000 8-bit PNG of about 1 MB (2.7 GB as RGB once decoded)."""
    return zero_png(tmp_path_factory.mktemp("huge") / "huge.png", 30000, 30000)


def test_segment_refuses_a_30000_squared_png_from_its_header(model, huge_png, tmp_path):
    refused(["segment", str(model), str(huge_png), "--out", str(tmp_path / "o")],
            "30000x30000", "limit of 50 MP")
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.parametrize("content, name, words", [
    (b"frame 1: this is a text file\n", "notes.png", ["not an image file"]),
    (b"", "empty.png", ["empty file"]),
    (b"frame 1: this is a text file\n", "notes.txt", ["neither an image nor a folder"]),
])
def test_segment_refuses_what_is_not_an_image(model, tmp_path, content, name, words):
    bad = tmp_path / name
    bad.write_bytes(content)
    refused(["segment", str(model), str(bad), "--out", str(tmp_path / "o")], str(bad), *words)


def test_card_says_a_directory_is_a_directory(tmp_path):
    refused(["card", str(tmp_path), "--out", str(tmp_path / "x.onnx")], "is a directory")


def test_card_refuses_huge_graphs_from_their_shapes(tmp_path):
    refused(["card", str(tf2onnx_like(tmp_path / "in.onnx", "logits", size=(20000, 20000))),
             "--out", str(tmp_path / "x.onnx")], "20000x20000", "limit", "4096x4096")
    refused(["card", str(wide_output(tmp_path / "out.onnx", 10000, (256, 256))), "--out",
             str(tmp_path / "x.onnx")], "10000", "limit of 1 GiB")
    # dynamic H and W: the output's size at --input-size comes from shape inference
    refused(["card", str(wide_output(tmp_path / "dyn.onnx", 10000, ("h", "w"))), "--out",
             str(tmp_path / "x.onnx"), "--input-size", "256x256"], "10000", "limit of 1 GiB")


@pytest.fixture()
def drive_csv(tmp_path) -> Path:
    return write_drive(tmp_path / "drive", drive(3), WORLD)


def test_floor_map_refuses_a_30000_squared_label_png(drive_csv, huge_png, tmp_path):
    (drive_csv.parent / "f01.png").unlink()
    os.link(huge_png, drive_csv.parent / "f01.png")
    refused(cli_args(tmp_path, drive_csv), "f01.png", "30000x30000", "limit of 50 MP")


def test_floor_map_csv_encodings_and_absurd_values(drive_csv, tmp_path):
    text = drive_csv.read_text()
    drive_csv.write_bytes(text.replace("image", "imáge", 1).encode("latin-1"))
    refused(cli_args(tmp_path, drive_csv), "not UTF-8", "save it as UTF-8")
    drive_csv.write_bytes(text.encode("utf-8-sig"))  # a spreadsheet's byte-order mark
    rc, out, err, _ = run_measured(cli_args(tmp_path, drive_csv))
    assert rc == 0 and "3 frames fused" in out, err
    rows = text.splitlines()
    rows[2] = ",".join([*rows[2].split(",")[:3], "1e308", *rows[2].split(",")[4:]])
    drive_csv.write_text("\n".join(rows) + "\n")
    refused(cli_args(tmp_path, drive_csv), "line 3", "1e+308", "plausible")


def test_bag_eval_refuses_a_bag_corrupted_mid_file(model, camvid_dir, tmp_path):
    """`seg-ros bag make` writes MCAP chunk checksums, so bytes flipped in the middle of the
    file fail the read before any frame is scored."""
    from seg_ros.bag.make import make_bag
    from seg_ros.bag.mcap_crc import count_crcs, unchecked_note

    bag = tmp_path / "bag"
    make_bag(camvid_dir / "val", bag, camvid_dir / "valannot", limit=3, rate=10.0,
             progress=False)
    (mcap,) = bag.glob("*.mcap")
    crcs = count_crcs(mcap)
    assert crcs.chunks > 0 and crcs.with_crc == crcs.chunks and unchecked_note(bag) is None
    data = bytearray(mcap.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0x5A for b in data[mid:mid + 64])
    mcap.write_bytes(bytes(data))
    refused(["bag", "eval", str(bag), "--model", str(model), "--json",
             str(tmp_path / "r.json")], "corrupt", "checksum")
    assert not (tmp_path / "r.json").exists()


def test_a_bag_without_chunk_checksums_is_reported(camvid_dir, tmp_path):
    """rosbags' own writer leaves every chunk's checksum 0: such a bag is not refused (nothing
    is known to be wrong) but `bag eval` says its corruption could not be detected."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    from seg_ros.bag.mcap_crc import add_chunk_crcs, count_crcs, unchecked_note

    bag = tmp_path / "plain"
    store = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        msg = store.types["std_msgs/msg/String"](data="hello")
        for i in range(3):
            w.write(conn, i, store.serialize_cdr(msg, conn.msgtype))
    (mcap,) = bag.glob("*.mcap")
    assert count_crcs(mcap).with_crc == 0
    note = unchecked_note(bag)
    assert note is not None and "cannot be detected" in note
    assert add_chunk_crcs(mcap) == count_crcs(mcap).chunks > 0 and unchecked_note(bag) is None
    from seg_ros.bag import iter_raw, open_reader

    reader = open_reader(bag)  # the checksums written are the ones rosbags verifies
    try:
        assert len(list(iter_raw(reader, list(reader.connections), str(bag)))) == 3
    finally:
        reader.close()


def test_the_shipped_demo_bag_carries_chunk_checksums():
    from seg_ros.bag.mcap_crc import unchecked_note

    assert unchecked_note(Path(__file__).resolve().parents[2] / "data" / "camvid_demo_bag") \
        is None
