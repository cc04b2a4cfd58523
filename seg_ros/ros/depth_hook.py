"""The node's depth input: ``depth/image`` + ``depth/camera_info`` in, ``~/points`` out.

A registered depth image (REP 118: 16UC1 millimetres or 32FC1 metres, 0 / NaN = no return;
e.g. a RealSense's ``aligned_depth_to_color/image_raw``) is paired with each colour frame by
stamp: the same stamp, else the nearest within ``depth.max_skew_ms`` among the depth images of
the last max(depth.max_skew_ms, the node's p99 latency) + :data:`KEEP_MARGIN_S` of stamp time
(a span, not a count: 150 Hz depth matches as well as 15 Hz). A colour frame without a twin is
counted (``depth_unmatched``) and still segmented; its cloud is skipped and its floor grid uses
the flat-floor rule. /diagnostics names the latest cause (rejected image, missing camera_info,
nearest depth image and its real gap, maps being built).

``~/points`` (sensor_msgs/PointCloud2, organised: the depth image's height x width, fields
x y z label confidence [rgb], see :mod:`seg_ros.depth.cloud`) is in the camera optical frame
with the colour frame's header, and is computed only while somebody subscribes. The depth
camera_info is needed only when the depth image's size differs from the colour image's; each
depth pixel then takes the label of the colour pixel its ray falls on (the rays and that map
are built beside the worker, seg_ros.depth.maps; a camera_info that keeps changing is WARN).

:meth:`DepthInput.frame_for` gives the floor grid the same matched frame (once per stamp), and
:meth:`DepthInput.floor_cells` marks the floor grid from it (``grid.source``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from seg_ros.depth import DepthGridMarker, MarkingSettings, fill_from_flat
from seg_ros.depth import depth_to_metres as decode_depth
from seg_ros.depth.maps import MapCache
from seg_ros.depth.rays import RayTable
from seg_ros.depth.stamps import StampBuffer
from seg_ros.errors import CodecError, ConfigError
from seg_ros.floor import UNKNOWN, CameraModel, GroundLut
from seg_ros.ros import params
from seg_ros.ros.convert import stamp_ns
from seg_ros.ros.param_groups import ParamGroup, checked
from seg_ros.ros.params import ParamSpec

DEPTH_TOPIC, DEPTH_INFO_TOPIC = "depth/image", "depth/camera_info"
KEEP_MARGIN_S = 0.25  # stamp time kept beyond max(skew, latency) for matching
MAX_LAG_S = 2.0  # the most stamp time a colour frame's match may reach back (clocks apart)
MAX_KEPT = 256  # depth images kept at most (memory bound, whatever the rate)
RECENT_S = 10.0  # a fault this recent names the cause of a silent ~/points
INFO_CHANGES_WARN = 3  # depth/colour camera pairs changing this often in RECENT_S: WARN
LOG_THROTTLE_S = 10.0
GRID_SOURCES = ("auto", "depth", "flat")

SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("depth.max_skew_ms", "double", 10.0,
              "A colour frame takes the depth image with its stamp, else the nearest one within "
              "this many milliseconds; none: counted as depth_unmatched (no cloud, flat-floor "
              "grid for that frame).", live=True, float_range=(0.0, 1000.0)),
    ParamSpec("depth.floor_tolerance", "double", 0.05,
              "Metres from the floor plane within which a traversable point is free floor.",
              live=True, float_range=(0.0, 1.0)),
    ParamSpec("depth.min_obstacle_height", "double", 0.1,
              "Points of any class at least this high (metres above the floor) are obstacles "
              "at their x-y position; > depth.floor_tolerance.", live=True,
              float_range=(0.0, 10.0)),
    ParamSpec("depth.max_obstacle_height", "double", 1.5,
              "Points higher than this (metres) neither mark nor clear cells: the robot passes "
              "under them (a table top above it, a ceiling).", live=True,
              float_range=(0.0, 100.0)),
    ParamSpec("depth.grid_stride", "integer", 2,
              "Every Nth row and column of the depth image marks the floor grid (1 = all; "
              "grazing surfaces get gaps between samples at larger strides).", live=True,
              int_range=(1, 64)),
    ParamSpec("grid.source", "string", "auto",
              "What marks ~/floor_grid (and the fused ~/floor_map): auto = depth where a pixel "
              "has a return, the flat-floor rule elsewhere and for frames without depth; depth "
              "= depth only (no depth: every cell unknown); flat = the label image on the "
              "floor plane, depth ignored.", live=True, choices=GRID_SOURCES),
    ParamSpec("depth.points_rgb", "bool", False,
              "Add the colour pixel to ~/points as a packed rgb field (PCL / RViz convention).",
              live=True),
)
SPEC_BY_NAME = {s.name: s for s in SPECS}


@dataclass(frozen=True)
class DepthConfig:
    """The validated depth parameters; the worker reads one snapshot per frame."""

    max_skew_ns: int
    marking: MarkingSettings
    rgb: bool
    grid_source: str


def config_from(values: Mapping[str, Any]) -> DepthConfig:
    """Parameter values -> DepthConfig; ConfigError naming the parameter and the fix."""
    marking = MarkingSettings(float(values["depth.floor_tolerance"]),
                              float(values["depth.min_obstacle_height"]),
                              float(values["depth.max_obstacle_height"]),
                              int(values["depth.grid_stride"]))
    source = str(values["grid.source"])
    if source not in GRID_SOURCES:
        raise ConfigError(f"grid.source {source!r} is not one of {', '.join(GRID_SOURCES)}: "
                          "set it to auto, depth or flat")
    return DepthConfig(round(float(values["depth.max_skew_ms"]) * 1e6), marking,
                       bool(values["depth.points_rgb"]), source)


@dataclass(frozen=True, eq=False)
class DepthFrame:
    """One matched depth image: metres (NaN = no return), its camera and rays, and the colour
    pixel of each depth pixel (None: registered pixel for pixel)."""

    metres: np.ndarray
    camera: CameraModel
    rays: RayTable
    pixel_map: np.ndarray | None
    skew_ns: int


@dataclass
class DepthCounters:
    """Since start; the worker and executor write, diagnostics read (GIL-atomic ints)."""

    matched: int = 0
    unmatched: int = 0        # colour frames that needed depth and found no twin
    rejected: int = 0         # depth images that could not be decoded
    no_camera_info: int = 0   # matched depth images without a usable camera_info
    depth_grids: int = 0      # floor grids marked from depth
    maps_pending: int = 0     # matched frames skipped while their rays / pixel map were built


def group() -> ParamGroup:
    """The depth input's parameter group (depth.*, grid.source)."""
    return ParamGroup("depth", "RGB-D (`~/points`, depth-based floor)", SPECS, prefix="depth",
                      what="depth", check=checked(config_from))


class DepthInput:
    """The node's depth input: ``DepthInput(node, group)`` subscribes depth/image and
    depth/camera_info; the outputs that need depth (~/points, the floor grid) ask it for the
    frame matched to theirs.

    ``node`` provides ``camera_info`` (the colour CameraInfo), ``startup`` (input QoS) and the
    ROS node API. Raises ConfigError when a depth parameter is invalid at start.
    """

    def __init__(self, node: Any, group: ParamGroup) -> None:
        self.node = node
        self.log = node.get_logger()
        self.group = group
        self._cfg = config_from(group.values)  # ConfigError naming the parameters and the fix
        self.counters = DepthCounters()
        self.buffer: StampBuffer[Any] = StampBuffer(self._span_ns(), MAX_KEPT)
        self.maps = MapCache(keep=8)
        self._period: dict[str, int] = {}  # faults by kind since the last health()
        self._fault: tuple[str, float] = ("", 0.0)  # latest fault line, monotonic time
        self._pair: tuple[Any, ...] = ()  # the last (depth, colour) camera pair matched
        self._pair_changes: deque[float] = deque(maxlen=64)  # when it changed (monotonic)
        self._lags: deque[int] = deque(maxlen=100)  # newest depth stamp - colour stamp, ns
        self.depth_info: Any = None
        self._models: dict[int, tuple[Any, CameraModel | None]] = {}  # id(msg) -> model
        self._recent: OrderedDict[tuple[int, int, int], DepthFrame | None] = OrderedDict()
        self._lock = threading.Lock()
        self._logged: dict[str, float] = {}
        self.last_skew_ms = float("nan")  # gap to the nearest depth image, matched or not
        self.grid_source_last = "none"  # what marked the last floor grid
        self._unmatched_stamp = -1
        self._pending_stamp = -1  # the last stamp whose depth waited for its maps (not cached)
        self._marker_cache: tuple[tuple[Any, ...], DepthGridMarker] | None = None
        self._trav_cache: tuple[tuple[Any, ...], np.ndarray] | None = None
        s = getattr(node, "startup", None)
        qos = (params.qos_profile(s.qos_reliability, s.qos_depth, s.qos_durability)
               if s is not None else qos_profile_sensor_data)
        self.depth_sub = node.create_subscription(Image, DEPTH_TOPIC, self._on_depth, qos)
        self.info_sub = node.create_subscription(CameraInfo, DEPTH_INFO_TOPIC, self._on_info,
                                                 qos)
        self.points_wanted: Any = lambda: False  # set by the ~/points output
        group.appliers.append(self._apply)
        self.log.info(f"depth input on {self.depth_sub.topic_name} (+ {self.info_sub.topic_name}"
                      " when its size differs)")

    # --- parameters and inputs (executor thread) -----------------------------------------------

    def _apply(self, changed: Mapping[str, Any]) -> None:
        self._cfg = config_from(self.group.values)  # one reference swap

    def config(self) -> DepthConfig:
        """The depth configuration in force (one snapshot per use)."""
        return self._cfg

    def _on_depth(self, msg: Image) -> None:
        self.buffer.put(stamp_ns(msg.header), msg)
        colour = self._model(self.node.camera_info)
        cameras = self._cameras((int(msg.height), int(msg.width)),
                                (0, 0) if colour is None else _size(colour), quiet=True)
        if cameras is not None:  # request the maps now, built beside the worker
            self.maps.get(*cameras, inline=False)

    def _span_ns(self) -> int:
        """Stamp time of depth kept: max(skew, the node's p99 latency, the p99 of how far back
        matches reached (newest depth stamp - colour stamp, at most MAX_LAG_S)) + margin."""
        lat = list(getattr(getattr(self.node, "stats", None), "lat_receive_ms", ()) or ())
        p99_ns = int(np.percentile(lat, 99) * 1e6) if lat else 0
        lags = list(getattr(self, "_lags", ()))
        lag_ns = min(int(np.percentile(lags, 99)), int(MAX_LAG_S * 1e9)) if lags else 0
        return max(self._cfg.max_skew_ns, p99_ns, lag_ns) + int(KEEP_MARGIN_S * 1e9)

    def _on_info(self, msg: CameraInfo) -> None:
        self.depth_info = msg

    # --- worker thread -------------------------------------------------------------------------

    def wanted(self) -> bool:
        """~/points has a subscriber (a colour frame without depth then counts as unmatched)."""
        return bool(self.points_wanted())

    def frame_for(self, header: Header, colour_size: tuple[int, int]) -> DepthFrame | None:
        """The depth frame matched to this colour frame (computed once per stamp), or None:
        no twin within depth.max_skew_ms (counted once a depth stream exists or ~/points is
        wanted), undecodable (counted), or no camera_info describes it (counted)."""
        stamp = stamp_ns(header)
        key = (stamp, *colour_size)  # labels at the output size map differently
        with self._lock:
            if key in self._recent:
                return self._recent[key]
        frame = self._match(stamp, colour_size)
        if frame is None and self._pending_stamp == stamp:
            return None  # maps still building: the same stamp seen again may get its depth
        with self._lock:
            self._recent[key] = frame
            while len(self._recent) > 4:
                self._recent.popitem(last=False)
        return frame

    def _match(self, stamp: int, colour_size: tuple[int, int]) -> DepthFrame | None:
        if (newest := self.buffer.newest) is not None:
            self._lags.append(newest - stamp)
        near = self.buffer.nearest(stamp, None)
        self.last_skew_ms = float("nan") if near is None else near[1] / 1e6
        if near is None or near[1] > self._cfg.max_skew_ns:
            if (self.buffer.received or self.wanted()) and stamp != self._unmatched_stamp:
                self._unmatched_stamp = stamp  # once per frame, whoever asks first
                self.counters.unmatched += 1
                gap = ("none is kept" if near is None
                       else f"the nearest is {near[1] / 1e6:.1f} ms away")
                self._fault_line("unmatched", f"no depth image on {self.depth_sub.topic_name} "
                                 f"within depth.max_skew_ms = {self._cfg.max_skew_ns / 1e6:g} ms "
                                 f"of a colour frame ({gap}): check that the depth stream runs "
                                 "and is stamped like the colour one")
            return None
        msg, skew = near
        try:
            metres = decode_depth(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                                  bool(msg.is_bigendian))
        except CodecError as e:
            self.counters.rejected += 1
            self._fault_line("rejected", f"depth image rejected: {e}")
            return None
        cameras = self._cameras(metres.shape, colour_size)
        if cameras is None:
            return None
        self._note_pair(cameras)
        maps = self.maps.get(*cameras)
        if maps is None:
            self._pending_stamp = stamp
            self.counters.maps_pending += 1
            st = self.maps.status
            why = (f"depth maps failed: {st.last_error}" if st.last_error else
                   f"building the depth rays / pixel map for the {st.building} depth image "
                   "beside the worker (about a second at 1280x720)")
            self._fault_line("pending", why)
            return None
        self.counters.matched += 1
        return DepthFrame(metres, cameras[0], maps.rays, maps.pixel_map, skew)

    def _note_pair(self, cameras: tuple[Any, ...]) -> None:
        if cameras != self._pair:
            if self._pair:
                self._pair_changes.append(time.monotonic())
            self._pair = cameras

    def _fault_line(self, kind: str, line: str) -> None:
        """Count ``kind`` for this period, remember ``line`` as the latest cause, log it
        (throttled per kind)."""
        self._period[kind] = self._period.get(kind, 0) + 1
        self._fault = (line, time.monotonic())
        self._warn(kind, line)

    def _cameras(self, depth_shape: tuple[int, ...], colour_size: tuple[int, int],
                 quiet: bool = False) -> tuple[CameraModel, CameraModel | None] | None:
        """(depth camera, colour camera or None when registered pixel for pixel), or None
        (counted, logged) when no camera_info describes the depth image."""
        colour = self._model(self.node.camera_info)
        depth = self._model(self.depth_info)
        if depth is None or _size(depth) != depth_shape:
            depth = colour if colour is not None and _size(colour) == depth_shape else None
        if colour is not None and _size(colour) != colour_size:
            colour = None  # the colour camera_info is of another stream: map by size only
        if depth is None or (colour is None and depth_shape != colour_size):
            if quiet:
                return None
            self.counters.no_camera_info += 1
            self._fault_line("camera_info", f"no camera_info describes the {depth_shape[1]}x"
                       f"{depth_shape[0]} depth image: publish its CameraInfo on "
                       f"{self.info_sub.topic_name} (or register the depth to the colour image "
                       "at the colour resolution)")
            return None
        return depth, (None if colour is None or colour == depth else colour)

    def _model(self, msg: Any) -> CameraModel | None:
        """CameraModel of a CameraInfo, converted once per message; None if absent/invalid."""
        if msg is None:
            return None
        key = id(msg)
        with self._lock:  # the executor (ray warm-up) and the worker both convert
            cached = self._models.get(key)
        if cached is None or cached[0] is not msg:
            try:
                model = CameraModel.from_camera_info(msg)
            except (ConfigError, ValueError, TypeError, OverflowError) as e:
                model = None
                self._warn("bad camera_info", f"camera_info unusable for depth: {e}")
            cached = (msg, model)
            with self._lock:
                if len(self._models) > 8:
                    self._models.clear()
                self._models[key] = cached
        return cached[1]

    def _warn(self, kind: str, line: str) -> None:
        """Log ``line`` at most once per LOG_THROTTLE_S for each ``kind``."""
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_THROTTLE_S) >= LOG_THROTTLE_S:
            self._logged[kind] = now
            self.log.warning(line)

    # --- the floor grid (worker thread, called by the floor hook) -------------------------------

    def floor_cells(self, flat: np.ndarray, lut: GroundLut, labels: np.ndarray, header: Header,
                    traversable: tuple[int, ...]) -> np.ndarray:
        """The grid this frame publishes and fuses, per grid.source: ``flat`` (the flat-floor
        grid of ``lut``) for flat or when auto finds no depth twin; else the depth-marked grid,
        with auto taking the flat value where a cell's pixel had no depth return."""
        cfg = self._cfg
        frame = None if cfg.grid_source == "flat" else self.frame_for(header, labels.shape[:2])
        if frame is None:
            if cfg.grid_source == "depth":
                flat = np.full_like(flat, UNKNOWN)
            self.grid_source_last = "flat" if cfg.grid_source != "depth" else "none"
            return flat
        marker = self._marker(frame, lut, cfg.marking)
        out = marker.update(frame.metres, labels, self._traversable(traversable, labels.dtype))
        if cfg.grid_source == "auto":
            fill_from_flat(out, flat, lut, frame.metres)
        self.counters.depth_grids += 1
        self.grid_source_last = cfg.grid_source
        return out

    def _marker(self, frame: DepthFrame, lut: GroundLut, marking: MarkingSettings
                ) -> DepthGridMarker:
        """The marker of this depth camera, pose, grid and settings, rebuilt only on change
        (tens of ms at 640x480: once per camera_info / pose / grid change)."""
        key = (frame.camera, lut.pose, lut.spec, marking, id(frame.pixel_map))
        if self._marker_cache is None or self._marker_cache[0] != key:
            marker = DepthGridMarker(lut.spec, lut.pose, frame.rays, marking, frame.pixel_map)
            self._marker_cache = (key, marker)
        return self._marker_cache[1]

    def _traversable(self, ids: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Bool per class id for the label dtype, cached for the last id set."""
        key = (ids, np.dtype(dtype).itemsize)
        if self._trav_cache is None or self._trav_cache[0] != key:
            table = np.zeros(256 if key[1] == 1 else 65536, bool)
            table[[i for i in ids if i < table.size]] = True
            self._trav_cache = (key, table)
        return self._trav_cache[1]

    # --- diagnostics -----------------------------------------------------------------------------

    def stall_reason(self) -> str:
        """Why ~/points stays silent (the node's watchdog names it): the latest fault of the
        last RECENT_S seconds, not a counter that was once non-zero."""
        if self.buffer.received == 0:
            return f"no depth image has arrived on {self.depth_sub.topic_name}"
        line, at = self._fault
        if line and time.monotonic() - at < RECENT_S:
            return line
        return (f"no depth image within depth.max_skew_ms of the colour frames (nearest "
                f"{self.last_skew_ms:.1f} ms away)")

    def health(self) -> tuple[int, str]:
        """WARN for a period in which colour frames that needed depth went without it (the
        colour outputs still went out), naming the latest cause; WARN while the camera pair
        keeps changing (each change costs a map build). Also re-sizes the matching span."""
        self.buffer.span_ns = self._span_ns()
        period, self._period = self._period, {}
        if (n := sum(period.values())) > 0:
            kinds = ", ".join(f"{v} {k}" for k, v in sorted(period.items()))
            return 1, f"depth: {n} colour frames without depth ({kinds}): {self._fault[0]}"
        now = time.monotonic()
        changes = sum(1 for t in self._pair_changes if now - t < RECENT_S)
        if changes >= INFO_CHANGES_WARN:
            return 1, (f"depth: the depth/colour camera_info changed {changes} times in the "
                       f"last {RECENT_S:g} s ({self.maps.status.builds} map builds so far): "
                       "publish one fixed calibration on depth/camera_info and camera_info")
        return 0, ""

    def diagnostics_values(self) -> dict[str, str]:
        """Key/values the node merges into its /diagnostics status."""
        c = self.counters
        return {"depth_received": str(self.buffer.received),
                "depth_matched": str(c.matched),
                "depth_unmatched": str(c.unmatched),
                "depth_rejected": str(c.rejected),
                "depth_no_camera_info": str(c.no_camera_info),
                "depth_maps_pending": str(c.maps_pending),
                "depth_map_builds": str(self.maps.status.builds),
                "depth_last_skew_ms": f"{self.last_skew_ms:.3f}",
                "depth_kept": str(len(self.buffer)),
                "depth_kept_span_ms": f"{self.buffer.span_ns / 1e6:.0f}",
                "depth_last_problem": self._fault[0],
                "depth_last_problem_age_s": (f"{time.monotonic() - self._fault[1]:.1f}"
                                             if self._fault[0] else ""),
                "depth_floor_grids": str(c.depth_grids),
                "floor_grid_source": self.grid_source_last}


def _size(camera: CameraModel) -> tuple[int, int]:
    """(height, width) of the image a camera model describes."""
    return camera.image_height, camera.image_width
