"""`seg-ros bag make --depth` writes registered 16UC1 depth next to the frames, and `bag eval`
replays it into a real node, which pairs every frame with its depth image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from seg_ros.bag import BagError, open_reader, typestore
from seg_ros.bag.make import make_bag

REPO = Path(__file__).resolve().parents[2]
N_FRAMES = 3
START_NS = 1_700_000_500 * 10**9


def _cli(*args: object, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg_ros.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=dict(os.environ))


def _depth_folder(camvid_dir: Path, folder: Path, scale: int = 1) -> dict[str, np.ndarray]:
    """A 16-bit PNG per frame (same name): a plane from 1.5 m to 9 m, 0 (no return) on top."""
    folder.mkdir()
    maps = {}
    for i, frame in enumerate(sorted((camvid_dir / "val").iterdir())[:N_FRAMES]):
        image = cv2.imread(str(frame))
        assert image is not None, frame
        h, w = image.shape[:2]
        h, w = h // scale, w // scale
        mm = np.tile(np.linspace(9000, 1500, h)[:, None] + 10 * i, (1, w)).astype(np.uint16)
        mm[: h // 5] = 0
        cv2.imwrite(str(folder / (frame.stem + ".png")), mm)
        maps[frame.stem] = mm
    return maps


def _read(bag: Path) -> dict[str, list[Any]]:
    """topic -> its messages (rosbags' generated classes), in bag order."""
    out: dict[str, list[Any]] = {}
    reader = open_reader(bag)
    try:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic, []).append(typestore().deserialize_cdr(raw, conn.msgtype))
    finally:
        reader.close()
    return out


@pytest.fixture(scope="module")
def depth_bag(camvid_dir: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("depth_bag")
    maps = _depth_folder(camvid_dir, tmp / "depth")
    out = tmp / "bag"
    r = _cli("bag", "make", "--images", camvid_dir / "val", "--labels", camvid_dir / "valannot",
             "--depth", tmp / "depth", "--out", out, "--limit", N_FRAMES, "--start",
             START_NS / 1e9, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "/camera/depth/image_raw [Image]" in r.stdout
    return out, maps


def test_bag_make_writes_depth_at_the_frame_stamps(depth_bag: tuple[Path, dict]) -> None:
    bag, maps = depth_bag
    topics = _read(bag)
    depth, images = topics["/camera/depth/image_raw"], topics["/camera/image_raw"]
    assert len(depth) == len(images) == N_FRAMES
    assert "/camera/depth/camera_info" not in topics  # same size as the frames: not needed
    for d, img, mm in zip(depth, images, maps.values()):
        assert d.encoding == "16UC1" and d.step == 2 * d.width and not d.is_bigendian
        assert (d.header.stamp.sec, d.header.stamp.nanosec) == (img.header.stamp.sec,
                                                                 img.header.stamp.nanosec)
        got = np.frombuffer(bytes(d.data), "<u2").reshape(d.height, d.width)
        np.testing.assert_array_equal(got, mm)


def test_bag_make_refuses_bad_depth_maps(camvid_dir: Path, tmp_path: Path) -> None:
    _depth_folder(camvid_dir, tmp_path / "half", scale=2)
    with pytest.raises(BagError, match="--depth-camera-info"):
        make_bag(camvid_dir / "val", tmp_path / "b1", depth=tmp_path / "half", limit=1,
                 progress=False)
    eight = tmp_path / "eight"
    eight.mkdir()
    first = sorted((camvid_dir / "val").iterdir())[0]
    cv2.imwrite(str(eight / (first.stem + ".png")), np.zeros((360, 480), np.uint8))
    with pytest.raises(BagError, match="16-bit PNGs in millimetres"):
        make_bag(camvid_dir / "val", tmp_path / "b2", depth=eight, limit=1, progress=False)
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


def test_bag_make_writes_the_depth_camera_info_when_given(camvid_dir: Path,
                                                          tmp_path: Path) -> None:
    _depth_folder(camvid_dir, tmp_path / "half", scale=2)
    calib = tmp_path / "depth.yaml"
    calib.write_text("image_width: 240\nimage_height: 180\ncamera_matrix:\n  rows: 3\n  cols: 3\n"
                     "  data: [200.0, 0.0, 119.5, 0.0, 200.0, 89.5, 0.0, 0.0, 1.0]\n"
                     "distortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n"
                     "  cols: 5\n  data: [0.0, 0.0, 0.0, 0.0, 0.0]\n")
    make_bag(camvid_dir / "val", tmp_path / "bag", depth=tmp_path / "half",
             depth_camera_info=calib, limit=2, progress=False)
    infos = _read(tmp_path / "bag")["/camera/depth/camera_info"]
    assert [(i.width, i.height, i.k[0]) for i in infos] == [(240, 180, 200.0)] * 2


@pytest.mark.ros
@pytest.mark.slow
def test_bag_eval_replays_depth_into_the_node(depth_bag: tuple[Path, dict], tiny_model: Path,
                                              tmp_path: Path) -> None:
    """Each replayed frame finds its depth twin in the node (depth_matched counts the warm-up
    frame too), none is unmatched, and the floor grid the contact sheet asks for is marked
    from depth."""
    bag, _ = depth_bag
    js = tmp_path / "report.json"
    r = _cli("bag", "eval", bag, "--model", tiny_model, "--json", js, "--png",
             tmp_path / "sheet.png", "--params-file", REPO / "config" / "camvid.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(js.read_text())
    assert rep["matched"] == N_FRAMES
    depth = rep["depth"]
    assert depth["topic"] == "/camera/depth/image_raw"
    assert depth["frames_with_depth"] == N_FRAMES
    assert depth["depth_matched"] >= N_FRAMES and depth["depth_unmatched"] == 0
    assert depth["depth_floor_grids"] >= N_FRAMES
    assert "-r depth/image:=/camera/depth/image_raw" in rep["node"]["command"]
