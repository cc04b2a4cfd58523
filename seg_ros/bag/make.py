"""Folder of frames (+ label maps, + camera calibration) -> rosbag2, with rosbags only (no rclpy).

Per frame, all with one header stamp (``start + i / rate``) that is also the bag timestamp:

* ``{prefix}/camera_info``        sensor_msgs/CameraInfo
* ``{prefix}/image_raw``          sensor_msgs/Image rgb8, or with ``compressed``
  ``{prefix}/image_raw/compressed`` sensor_msgs/CompressedImage JPEG (JPEG sources are copied
  byte for byte, other sources encoded at ``jpeg_quality``)
* ``{prefix}/labels_gt``          sensor_msgs/Image mono8 (mono16 for ids > 255) ground truth, or
  with ``compressed`` ``{prefix}/labels_gt/compressed`` as lossless PNG
  ('mono8; png compressed mono8'), which keeps a 30-frame CamVid bag under 5 MB.
* ``{prefix}/depth/image_raw``    sensor_msgs/Image 16UC1 (REP 118 millimetres, 0 = no return)
  from a folder of 16-bit PNGs paired with the frames by name (``depth``), registered to the
  colour frames; ``{prefix}/depth/camera_info`` from ``depth_camera_info`` (needed when the
  depth maps' size differs from the frames').

The bag is written to a hidden ``.NAME.partial`` folder next to ``out`` and renamed onto ``out``
only when complete, so an error (a label map of the wrong size, a missing file) or Ctrl-C leaves
nothing at ``out``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from seg_ros import codec
from seg_ros.bag import (
    CAMERA_INFO,
    COMPRESSED,
    IMAGE,
    STORAGES,
    BagError,
    Topics,
    commit,
    discard,
    staging,
    typestore,
)
from seg_ros.bag.mcap_crc import add_chunk_crcs
from seg_ros.frames import IMAGE_SUFFIXES, list_images, read_rgb

DEFAULT_HFOV_DEG = 60.0
"""Horizontal field of view of the default pinhole camera when no calibration is given."""


@dataclass
class CameraModel:
    """sensor_msgs/CameraInfo content (row-major K 3x3, R 3x3, P 3x4; D per distortion model)."""

    width: int
    height: int
    k: list[float]
    d: list[float] = field(default_factory=lambda: [0.0] * 5)
    r: list[float] = field(default_factory=lambda: [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0])
    p: list[float] | None = None
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        if self.p is None:
            k = self.k
            self.p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0]


def default_camera(width: int, height: int, hfov_deg: float = DEFAULT_HFOV_DEG) -> CameraModel:
    """A plausible pinhole for a frame size when no calibration exists: square pixels,
    fx = fy = width / (2 tan(hfov / 2)) (60 deg: 0.866 * width), principal point at the image
    centre, no distortion (plumb_bob, all zeros). Good enough for a floor grid demo; calibrate
    a real camera with camera_calibration and pass its YAML instead."""
    f = width / (2.0 * math.tan(math.radians(hfov_deg) / 2.0))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return CameraModel(width, height, [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0])


def read_camera_yaml(path: Path) -> CameraModel:
    """Camera model from a YAML as camera_calibration / camera_info_manager write it."""
    import yaml

    try:
        y = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise BagError(f"camera info file {path} does not exist: check --camera-info") from None
    except yaml.YAMLError as e:
        raise BagError(f"{path} is not valid YAML ({e}): fix the calibration file") from None

    def matrix(key: str, n: int, required: bool = True) -> list[float] | None:
        m = y.get(key) if isinstance(y, dict) else None
        if m is None and not required:
            return None
        data = m.get("data") if isinstance(m, dict) else m
        if not isinstance(data, list) or (n and len(data) != n):
            raise BagError(
                f"{path}: {key} must hold {n or 'a list of'} numbers under 'data' "
                "(the camera_calibration YAML layout)"
            )
        return [float(v) for v in data]

    if not isinstance(y, dict) or "image_width" not in y or "image_height" not in y:
        raise BagError(
            f"{path}: missing image_width/image_height: is it a camera_calibration YAML?"
        )
    return CameraModel(
        width=int(y["image_width"]),
        height=int(y["image_height"]),
        k=matrix("camera_matrix", 9) or [],  # required: a list of 9 or a BagError
        d=matrix("distortion_coefficients", 0, required=False) or [0.0] * 5,
        r=matrix("rectification_matrix", 9, required=False) or [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        p=matrix("projection_matrix", 12, required=False),
        distortion_model=str(y.get("distortion_model", "plumb_bob")),
    )


@dataclass
class MakeResult:
    out: Path
    frames: int
    topics: dict[str, str]  # topic -> type
    size_bytes: int
    start_ns: int
    period_ns: int


def find_label(labels: Path, image: Path) -> Path:
    """The label map paired with ``image``: same file name, else same stem with any suffix."""
    same = labels / image.name
    if same.is_file():
        return same
    for p in sorted(labels.glob(image.stem + ".*")):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return p
    raise BagError(
        f"no label map for {image.name} in {labels}: label maps are paired by file name; "
        "add it or leave the frame out"
    )


def make_bag(
    images: str | Path,
    out: str | Path,
    labels: str | Path | None = None,
    camera_info: str | Path | None = None,
    compressed: bool = False,
    rate: float = 10.0,
    storage: str = "mcap",
    frame_id: str = "camera",
    topic_prefix: str = "/camera",
    start_ns: int | None = None,
    jpeg_quality: int = 90,
    limit: int | None = None,
    stride: int = 1,
    progress: bool = True,
    depth: str | Path | None = None,
    depth_camera_info: str | Path | None = None,
) -> MakeResult:
    """Write a rosbag2 of the frames in ``images`` (sorted by name); see the module docstring.

    Args:
        rate: frames per second; stamps are ``start_ns + i * 1e9 / rate``.
        start_ns: stamp of the first frame in ns since the epoch (default: now, whole seconds).
        limit, stride: keep every ``stride``-th frame, at most ``limit`` of them.
        depth: folder of 16-bit PNG depth maps in millimetres, paired with frames by name.
        depth_camera_info: camera_calibration YAML of the depth maps (when their size differs).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    out = Path(out)
    _check_options(storage, rate, stride, limit, topic_prefix)
    frames = list_images(images, "--images")[::stride][:limit]
    label_dir = Path(labels) if labels is not None else None
    if label_dir is not None and not label_dir.is_dir():
        raise BagError(f"--labels {label_dir} is not a folder of label maps")
    pairs = [(f, find_label(label_dir, f) if label_dir else None) for f in frames]
    depth_maps = _depth_maps(depth, frames)
    topics = Topics(topic_prefix, compressed)
    period_ns = round(1e9 / rate)
    if start_ns is None:
        start_ns = int(time.time()) * 1_000_000_000

    staged = staging(out)
    try:
        writer = Writer(staged, version=9, storage_plugin=StoragePlugin[storage.upper()])
        src = Path(images).resolve()
        writer.set_custom_data("seg_ros.source", f"{src.parent.name}/{src.name}")
        writer.open()
        frame_writer = _FrameWriter(writer, topics, compressed, label_dir is not None,
                                    frame_id, jpeg_quality, camera_info)
        depth_writer = (_DepthWriter(writer, topics, frame_id, depth_camera_info)
                        if depth_maps else None)
        for i, (frame, label) in enumerate(tqdm(pairs, desc="bag make", unit="frame",
                                                disable=not progress)):
            frame_writer.write(start_ns + i * period_ns, frame, label)
            if depth_writer is not None:
                depth_writer.write(start_ns + i * period_ns, depth_maps[i], frame_writer.size)
        writer.close()
        for mcap in staged.glob("*.mcap"):  # chunk checksums: corruption fails the read
            add_chunk_crcs(mcap)
        commit(staged, out)
    except BaseException:
        discard(staged)
        raise
    topics_written = {**frame_writer.topics, **(depth_writer.topics if depth_writer else {})}
    return MakeResult(out=out, frames=len(pairs), topics=topics_written,
                      size_bytes=sum(p.stat().st_size for p in out.rglob("*") if p.is_file()),
                      start_ns=start_ns, period_ns=period_ns)


def _check_options(storage: str, rate: float, stride: int, limit: int | None,
                   topic_prefix: str) -> None:
    if storage not in STORAGES:
        raise BagError(f"--storage {storage!r} is not one of {', '.join(STORAGES)}")
    if not rate > 0:
        raise BagError(f"--rate {rate} must be > 0 frames per second")
    if stride < 1 or (limit is not None and limit < 1):
        raise BagError("--stride and --limit must be >= 1")
    if not topic_prefix.startswith("/") or topic_prefix.endswith("/"):
        raise BagError(f"--topic-prefix {topic_prefix!r} must start with '/' and not end with '/'")


class _FrameWriter:
    """Writes one frame's camera info, image and (optional) label map at one stamp; checks that
    every frame has the size of the first and of the camera calibration."""

    def __init__(self, writer: Any, topics: Topics, compressed: bool, with_labels: bool,
                 frame_id: str, jpeg_quality: int, camera_info: str | Path | None) -> None:
        self.ts = typestore()
        self.writer, self.compressed, self.frame_id = writer, compressed, frame_id
        self.jpeg_quality, self.camera_info = jpeg_quality, camera_info
        self.cam = read_camera_yaml(Path(camera_info)) if camera_info else None
        self.size: tuple[int, int] | None = None
        self.image_type = COMPRESSED if compressed else IMAGE
        self.c_info = writer.add_connection(topics.camera_info, CAMERA_INFO, typestore=self.ts)
        self.c_img = writer.add_connection(topics.image, self.image_type, typestore=self.ts)
        self.c_lab = (writer.add_connection(topics.labels, self.image_type, typestore=self.ts)
                      if with_labels else None)
        self.topics = {topics.camera_info: CAMERA_INFO, topics.image: self.image_type}
        if with_labels:
            self.topics[topics.labels] = self.image_type

    def _camera(self, frame: Path, h: int, w: int) -> CameraModel:
        """The camera of a ``w`` x ``h`` frame: the calibration (checked) or a default one."""
        if self.size is None:
            self.size = (h, w)
            if self.cam is None:
                self.cam = default_camera(w, h)
            elif (self.cam.width, self.cam.height) != (w, h):
                raise BagError(
                    f"camera info {self.camera_info} is for {self.cam.width}x{self.cam.height} "
                    f"but the frames are {w}x{h}: pass the calibration of this "
                    "camera/resolution")
        elif (h, w) != self.size:
            raise BagError(
                f"frame {frame} is {w}x{h} but earlier frames are {self.size[1]}x{self.size[0]}:"
                " one bag holds one camera stream; resize or split the folder")
        assert self.cam is not None
        return self.cam

    def write(self, t: int, frame: Path, label: Path | None) -> None:
        T, ts = self.ts.types, self.ts
        header = T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=t // 1_000_000_000,
                                                   nanosec=t % 1_000_000_000),
            frame_id=self.frame_id)
        rgb = read_rgb(frame)
        h, w = rgb.shape[:2]
        cam = self._camera(frame, h, w)
        self.writer.write(self.c_info, t, ts.serialize_cdr(_camera_info_msg(T, header, cam),
                                                           CAMERA_INFO))
        if self.compressed:
            msg = _compressed_msg(T, header, frame, rgb, self.jpeg_quality)
        else:
            step, data = codec.encode_raw(rgb, "rgb8")
            msg = T[IMAGE](header=header, height=h, width=w, encoding="rgb8",
                           is_bigendian=0, step=step, data=np.frombuffer(data, np.uint8))
        self.writer.write(self.c_img, t, ts.serialize_cdr(msg, self.image_type))
        if label is None or self.c_lab is None:
            return
        ids = _read_labels(label)
        if ids.shape != (h, w):
            raise BagError(
                f"label map {label} is {ids.shape[1]}x{ids.shape[0]} but its frame "
                f"{frame.name} is {w}x{h}: label maps must match their frames pixel for "
                "pixel (resize them with nearest-neighbour)")
        self.writer.write(self.c_lab, t, ts.serialize_cdr(
            _labels_msg(T, header, ids, self.compressed), self.image_type))


def _depth_maps(depth: str | Path | None, frames: list[Path]) -> list[Path]:
    """The depth map of each frame (paired by name), or [] without a depth folder."""
    if depth is None:
        return []
    folder = Path(depth)
    if not folder.is_dir():
        raise BagError(f"--depth {folder} is not a folder of 16-bit PNG depth maps")
    return [find_label(folder, f) for f in frames]


class _DepthWriter:
    """Writes each frame's depth map as a 16UC1 Image (and the depth camera_info, if given)
    at the frame's stamp; checks the maps' type and size."""

    def __init__(self, writer: Any, topics: Topics, frame_id: str,
                 camera_info: str | Path | None) -> None:
        self.ts, self.writer, self.frame_id = typestore(), writer, frame_id
        self.cam = read_camera_yaml(Path(camera_info)) if camera_info else None
        self.camera_info = camera_info
        self.c_depth = writer.add_connection(topics.depth, IMAGE, typestore=self.ts)
        self.topics = {topics.depth: IMAGE}
        self.c_info = None
        if self.cam is not None:
            self.c_info = writer.add_connection(topics.depth_info, CAMERA_INFO,
                                                typestore=self.ts)
            self.topics[topics.depth_info] = CAMERA_INFO

    def write(self, t: int, path: Path, frame_size: tuple[int, int] | None) -> None:
        T, ts = self.ts.types, self.ts
        mm = _read_depth(path)
        h, w = mm.shape
        self._check_size(path, (h, w), frame_size)
        header = T["std_msgs/msg/Header"](
            stamp=T["builtin_interfaces/msg/Time"](sec=t // 1_000_000_000,
                                                   nanosec=t % 1_000_000_000),
            frame_id=self.frame_id)
        if self.c_info is not None and self.cam is not None:
            self.writer.write(self.c_info, t, ts.serialize_cdr(
                _camera_info_msg(T, header, self.cam), CAMERA_INFO))
        msg = T[IMAGE](header=header, height=h, width=w, encoding="16UC1", is_bigendian=0,
                       step=2 * w, data=np.frombuffer(mm.astype("<u2").tobytes(), np.uint8))
        self.writer.write(self.c_depth, t, ts.serialize_cdr(msg, IMAGE))

    def _check_size(self, path: Path, size: tuple[int, int],
                    frame_size: tuple[int, int] | None) -> None:
        h, w = size
        if self.cam is not None and (self.cam.width, self.cam.height) != (w, h):
            raise BagError(f"depth map {path} is {w}x{h} but --depth-camera-info "
                           f"{self.camera_info} is for {self.cam.width}x{self.cam.height}: pass "
                           "the calibration of the depth maps")
        if self.cam is None and frame_size is not None and size != frame_size:
            raise BagError(f"depth map {path} is {w}x{h}, its frame {frame_size[1]}x"
                           f"{frame_size[0]}: register the depth to the colour frames at their "
                           "size, or pass --depth-camera-info for the depth maps")


def _read_depth(path: Path) -> np.ndarray:
    mm = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mm is None:
        raise BagError(f"depth map {path} is not a readable image: re-copy it")
    if mm.ndim != 2 or mm.dtype != np.uint16:
        raise BagError(f"depth map {path} is {mm.dtype} with shape {mm.shape}: depth maps must "
                       "be single-channel 16-bit PNGs in millimetres (0 = no return)")
    return mm


def _read_labels(path: Path) -> np.ndarray:
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None:
        raise BagError(f"label map {path} is not a readable image: re-copy it")
    if ids.ndim != 2 or ids.dtype not in (np.uint8, np.uint16):
        raise BagError(
            f"label map {path} is {ids.dtype} with shape {ids.shape}: label maps must be "
            "single-channel 8/16-bit PNGs of class ids (not colour masks)"
        )
    return ids


def _compressed_msg(T: Any, header: Any, frame: Path, rgb: np.ndarray, quality: int) -> Any:
    if frame.suffix.lower() in (".jpg", ".jpeg"):
        fmt, data = "rgb8; jpeg compressed bgr8", frame.read_bytes()  # no second JPEG loss
    else:
        fmt, data = codec.encode_compressed(rgb, "jpeg", quality)
    return T[COMPRESSED](header=header, format=fmt, data=np.frombuffer(data, np.uint8))


def _labels_msg(T: Any, header: Any, ids: np.ndarray, compressed: bool) -> Any:
    enc = "mono8" if ids.dtype == np.uint8 else "mono16"
    if compressed:
        fmt, data = codec.encode_compressed(ids, "png")
        return T[COMPRESSED](header=header, format=fmt, data=np.frombuffer(data, np.uint8))
    step, raw = codec.encode_raw(ids, enc)
    return T[IMAGE](header=header, height=ids.shape[0], width=ids.shape[1], encoding=enc,
                    is_bigendian=0, step=step, data=np.frombuffer(raw, np.uint8))


def _camera_info_msg(T: Any, header: Any, cam: CameraModel) -> Any:
    f64 = lambda v: np.asarray(v, np.float64)  # noqa: E731
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                do_rectify=False)
    return T[CAMERA_INFO](header=header, height=cam.height, width=cam.width,
                          distortion_model=cam.distortion_model, d=f64(cam.d), k=f64(cam.k),
                          r=f64(cam.r), p=f64(cam.p), binning_x=0, binning_y=0, roi=roi)
