"""The segmentation node's own parameters (the node group, seg_ros.ros.param_groups): one table
of specs, their descriptors and validation.

Everything except :func:`read`, :func:`descriptor` and :func:`qos_profile` is pure Python, so
the rules (ranges, choices, which parameters change live and which need a restart) are unit
tested without a ROS graph. Reasons returned by the checks are shown to whoever set the
parameter (``ros2 param set`` prints them): each names the problem and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_ros.engines import backend_names
from seg_ros.errors import ConfigError
from seg_ros.intrinsics import parse_output_size

PACKAGE = "seg_ros"
DEFAULT_MODEL_NAME = "camvid.onnx"
REPO = Path(__file__).resolve().parents[2]

TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable", "system_default")
DURABILITIES = ("volatile", "transient_local", "system_default")
MIN_RATE_HZ = 0.01  # one frame per 100 s: slower than that is a stopped node, not a rate


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    kind: 'string', 'double', 'integer', 'bool' or 'string_array' (the ROS parameter type).
    live: may change while the node runs; otherwise it is read at start-up and declared
        read-only (rclpy refuses a change, with :func:`restart_reason`'s wording); a managed
        node declares it writable and refuses a change only once configured.
    read_only: read-only in a managed node too (QoS cannot change on a live subscription).
    """

    name: str
    kind: str
    default: Any
    description: str
    live: bool = False
    read_only: bool = False
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] = ()


SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "string", "",
              "Model file (.onnx with an embedded model card, or .engine/.pt + JSON sidecar). "
              "Empty: the shipped models/camvid.onnx (package share dir when installed, else "
              "the repository's models/ folder). Restart the node to change it."),
    ParamSpec("backend", "string", "auto",
              "Inference backend: auto (by file type; TensorRT for ONNX when a GPU and "
              "tensorrt are present), onnxruntime, tensorrt, torch, a registered backend, or "
              "'module:Factory'."),
    ParamSpec("device", "string", "cpu",
              "Where the engine runs: cpu, cuda, cuda:N (onnxruntime also: tensorrt)."),
    ParamSpec("threads", "integer", 0,
              "Intra-op CPU threads of the engine; 0 lets the runtime decide.",
              int_range=(0, 256)),
    ParamSpec("workers", "integer", 1,
              "Frames segmented at once, each by a worker thread with its own engine instance. "
              "1 gives the lowest latency; 2 or more raise throughput where one inference does "
              "not fill the machine (threads:=1 per worker on a small CPU, a GPU). Each output "
              "stays in arrival order.", int_range=(1, 16)),
    ParamSpec("input_transport", "string", "raw",
              "raw: subscribe sensor_msgs/Image on 'image'; compressed: "
              "sensor_msgs/CompressedImage (JPEG/PNG) on 'image/compressed'.",
              choices=TRANSPORTS),
    ParamSpec("cameras", "string_array", None,
              "Camera names, e.g. [front, left, rear]: camera c subscribes c/image (or "
              "c/image/compressed) and c/camera_info and publishes ~/c/labels, ~/c/confidence, "
              "... with its own header; one engine segments them all, frames waiting together "
              "in one batch. Unset or empty: one camera on image and camera_info.",
              read_only=True),
    ParamSpec("max_batch", "integer", 0,
              "Most frames (one per camera) stacked into one engine call; 0 = the number of "
              "cameras. An engine fixed at batch 1 runs the batch as a loop.",
              read_only=True, int_range=(0, 64)),
    ParamSpec("batch_wait_ms", "double", 0.0,
              "With several cameras: how long (ms) a waiting frame may wait for the other "
              "cameras' frames to fill the batch; 0 = take what is there, never wait for a "
              "slow camera.", live=True, float_range=(0.0, 1000.0)),
    ParamSpec("overlay_alpha", "double", 0.5,
              "Opacity of the class colours in ~/overlay: 0 = camera only, 1 = colours only.",
              live=True, float_range=(0.0, 1.0)),
    ParamSpec("max_rate_hz", "double", 0.0,
              "Upper bound on frames processed per second (frames arriving faster are "
              "dropped, latest wins); 0 = as fast as the engine allows, else "
              f"{MIN_RATE_HZ:g}..1000 (a change takes effect at once, even mid-wait).",
              live=True, float_range=(0.0, 1000.0)),
    ParamSpec("max_input_pixels", "integer", 50_000_000,
              "Largest image decoded, in pixels (width x height, read from the message or "
              "the JPEG/PNG header before anything is allocated); larger frames are rejected "
              "and counted. The default is above every real camera.",
              live=True, int_range=(1, 1_000_000_000)),
    ParamSpec("diagnostics.stall_s", "double", 2.0,
              "An output that somebody subscribes to and that stays silent this long while "
              "images arrive (or 1.5 frame periods under max_rate_hz, if longer) makes "
              "/diagnostics WARN, twice as long ERROR, naming the output and why.",
              live=True, float_range=(0.1, 3600.0)),
    ParamSpec("publish_labels", "bool", True,
              "Publish ~/labels (mono8 class ids; mono16 for > 255 classes).", live=True),
    ParamSpec("publish_confidence", "bool", True,
              "Publish ~/confidence (mono8, max softmax probability x 255).", live=True),
    ParamSpec("publish_color_mask", "bool", True,
              "Publish ~/color_mask (rgb8, one colour per class).", live=True),
    ParamSpec("publish_overlay", "bool", True,
              "Publish ~/overlay (rgb8 camera image blended with the class colours).", live=True),
    ParamSpec("enabled", "bool", True,
              "false pauses the node without tearing it down (also the ~/enable SetBool "
              "service): images are not taken, nothing is published, nothing counts as "
              "dropped.", live=True),
    ParamSpec("output_size", "string", "input",
              "Size of the published images: input (the camera's), model (the engine's "
              "input size) or WxH in pixels, e.g. a depth camera's 640x480; ~/camera_info is "
              "the input camera_info scaled to it.", live=True),
    ParamSpec("unknown_below", "double", 0.0,
              "Pixels whose confidence (max softmax, 0..1) is below this get label 255 "
              "(unlabelled) in ~/labels; 0 = off. Needs a model that gives confidence.",
              live=True, float_range=(0.0, 1.0)),
    ParamSpec("mask_classes", "string_array", None,
              "Classes (names or ids) of ~/mask: mask_value where the pixel is one of them, "
              "0 elsewhere (e.g. [Pedestrian, Bicyclist, Car] for mappers and SLAM to "
              "ignore); unset or [''] = no ~/mask.", live=True),
    ParamSpec("mask_value", "integer", 1,
              "Value of masked pixels in ~/mask: 1 (nvblox's convention) or 255 (viewable).",
              live=True, int_range=(1, 255)),
    ParamSpec("jpeg_quality", "integer", 80,
              "JPEG quality of ~/color_mask/compressed and ~/overlay/compressed (1..100).",
              live=True, int_range=(1, 100)),
    ParamSpec("class_filter", "string_array", None,
              "Classes shown in ~/overlay, by name or id (e.g. [Road, '4']); unset, empty or "
              "[''] shows every class. Other classes keep the camera pixels.", live=True),
    ParamSpec("qos.reliability", "string", "best_effort",
              "Reliability of the image and camera_info subscriptions (best_effort matches "
              "every camera driver).", read_only=True, choices=RELIABILITIES),
    ParamSpec("qos.depth", "integer", 1,
              "History depth of the input subscriptions; the node keeps only the latest frame "
              "anyway.", read_only=True, int_range=(1, 1000)),
    ParamSpec("qos.durability", "string", "volatile",
              "Durability of the input subscriptions.", read_only=True, choices=DURABILITIES),
)
SPEC_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in SPECS}
RESTART_PARAMS: tuple[str, ...] = tuple(s.name for s in SPECS if not s.live and not s.read_only)


@dataclass(frozen=True)
class StartupSettings:
    """Fixed for the node's lifetime (they shape the engine and the subscriptions)."""

    model_path: Path
    backend: str
    device: str
    threads: int
    workers: int
    input_transport: str
    cameras: tuple[str, ...]
    max_batch: int
    qos_reliability: str
    qos_depth: int
    qos_durability: str


@dataclass(frozen=True)
class LiveSettings:
    """Changed at run time through ``ros2 param set``; the worker reads one snapshot per frame."""

    overlay_alpha: float = 0.5
    max_rate_hz: float = 0.0
    max_input_pixels: int = 50_000_000
    stall_s: float = 2.0
    publish_labels: bool = True
    publish_confidence: bool = True
    publish_color_mask: bool = True
    publish_overlay: bool = True
    class_filter: tuple[str, ...] = ()
    enabled: bool = True
    output_size: str = "input"
    unknown_below: float = 0.0
    mask_classes: tuple[str, ...] = ()
    mask_value: int = 1
    jpeg_quality: int = 80
    batch_wait_ms: float = 0.0


# ----------------------------------------------------------------------------------- checks


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (None when it is)."""
    spec = SPEC_BY_NAME.get(name)
    if spec is None:
        return None  # not ours (use_sim_time and friends)
    if value is None:
        return None if spec.kind == "string_array" else f"{name} must have a value"
    if spec.float_range is not None:
        lo, hi = spec.float_range
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value) or not lo <= value <= hi:
            return f"{name} = {value!r} is outside {lo:g}..{hi:g}: give a number in that range"
    if spec.int_range is not None:
        lo, hi = spec.int_range
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            return f"{name} = {value!r} is outside {lo}..{hi}: give an integer in that range"
    if spec.choices and value not in spec.choices:
        return f"{name} = {value!r} is not one of {', '.join(spec.choices)}"
    if name == "backend" and not (isinstance(value, str) and ":" in value) and (
            value not in backend_names()):  # the engines' own list: registered ones included
        return f"backend = {value!r} is not one of {', '.join(backend_names())} or 'module:Class'"
    if name == "output_size":
        try:
            parse_output_size(value)
        except ConfigError as e:
            return str(e)
    if name == "mask_value" and value not in (1, 255):
        return f"mask_value = {value!r}: give 1 (nvblox's convention) or 255 (viewable)"
    if name == "max_rate_hz" and 0 < value < MIN_RATE_HZ:
        return (f"max_rate_hz = {value!r} is below {MIN_RATE_HZ:g} Hz (one frame per "
                f"{1 / MIN_RATE_HZ:g} s): give 0 for no limit or a rate of {MIN_RATE_HZ:g}..1000")
    return None


def closest_name(name: str, declared: Iterable[str]) -> str:
    """' (did you mean X?)' for a parameter name that is not declared, or ''."""
    import difflib

    near = difflib.get_close_matches(name, list(declared), n=1, cutoff=0.6)
    return f" (did you mean {near[0]}?)" if near else ""


RESTART_NOTE = "read at start-up: restart the node to change it"


def restart_reason(name: str) -> str:
    """The one refusal of a change to a parameter read only at start-up (every such one)."""
    return f"restart the node to change {name} (it is only read at start-up)"


def check_update(name: str, value: Any, class_names: Sequence[str] = ()) -> str | None:
    """Why a run-time change of ``name`` to ``value`` is refused (None: accept it)."""
    if name in RESTART_PARAMS:
        return restart_reason(name)
    reason = check_value(name, value)
    if reason is None and name in ("class_filter", "mask_classes") and class_names:
        try:
            parse_class_filter(value, class_names, name)
        except ConfigError as e:
            return str(e)
    return reason


def parse_class_filter(items: Iterable[str] | None, class_names: Sequence[str],
                       param: str = "class_filter") -> tuple[int, ...]:
    """Class names (case-insensitive) or ids -> sorted unique class ids (() for none given);
    errors name ``param``."""
    ids: set[int] = set()
    lower = {n.lower(): i for i, n in enumerate(class_names)}
    for raw in items or ():
        item = str(raw).strip()
        if not item:
            continue
        if item.lstrip("-").isdigit():
            i = int(item)
            if not 0 <= i < len(class_names):
                raise ConfigError(
                    f"{param} id {i} is outside 0..{len(class_names) - 1}: use ids of this "
                    "model (see ~/label_info or `seg-ros info MODEL`)"
                )
            ids.add(i)
        elif item.lower() in lower:
            ids.add(lower[item.lower()])
        else:
            raise ConfigError(
                f"{param} name {item!r} is not a class of this model: choose from "
                f"{', '.join(class_names)}"
            )
    return tuple(sorted(ids))


def default_model_path() -> Path:
    """The shipped model: <share>/seg_ros/models/camvid.onnx when installed, else the repo's."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            shipped = Path(get_package_share_directory(PACKAGE)) / "models" / DEFAULT_MODEL_NAME
            if shipped.is_file():
                return shipped
        except (PackageNotFoundError, OSError, ValueError):  # OSError: AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    return REPO / "models" / DEFAULT_MODEL_NAME


def resolve_model_path(value: str) -> Path:
    """``model_path`` parameter -> file path ('' = :func:`default_model_path`, ~ expanded)."""
    return Path(value).expanduser() if value else default_model_path()


def startup_from(values: Mapping[str, Any]) -> StartupSettings:
    """Validate the start-up parameters; ConfigError names the parameter and the fix."""
    for name in (*RESTART_PARAMS, "qos.reliability", "qos.depth", "qos.durability",
                 "max_batch"):
        reason = check_value(name, values[name])
        if reason:
            raise ConfigError(f"parameter {reason}")
    return StartupSettings(
        model_path=resolve_model_path(values["model_path"]),
        backend=values["backend"], device=values["device"], threads=int(values["threads"]),
        workers=int(values["workers"]), input_transport=values["input_transport"],
        cameras=camera_names(values.get("cameras")), max_batch=int(values["max_batch"]),
        qos_reliability=values["qos.reliability"], qos_depth=int(values["qos.depth"]),
        qos_durability=values["qos.durability"],
    )


CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def camera_names(value: Sequence[str] | None) -> tuple[str, ...]:
    """The ``cameras`` parameter checked: distinct names that are one ROS name token each
    (blank entries ignored, so [''] means none); ConfigError names the bad entry."""
    names = tuple(str(v).strip() for v in (value or ()) if str(v).strip())
    for name in names:
        if not CAMERA_NAME.fullmatch(name):
            raise ConfigError(f"parameter cameras: {name!r} is not a valid camera name: use "
                              "letters, digits and _ starting with a letter, e.g. front_left")
    if len(set(names)) != len(names):
        raise ConfigError(f"parameter cameras lists a camera twice ({list(names)}): give each "
                          "camera once")
    return names


def live_from(values: Mapping[str, Any], base: LiveSettings | None = None) -> LiveSettings:
    """A LiveSettings with ``values`` (only live parameter names) applied over ``base``."""
    cur = base or LiveSettings()
    kw: dict[str, Any] = {}
    for name, value in values.items():
        if name not in SPEC_BY_NAME or not SPEC_BY_NAME[name].live:
            continue
        field = LIVE_FIELDS.get(name, name)
        if SPEC_BY_NAME[name].kind == "string_array":
            kw[field] = tuple(str(v) for v in (value or ()) if str(v).strip())
        elif SPEC_BY_NAME[name].kind == "string":
            kw[field] = str(value)
        elif SPEC_BY_NAME[name].kind == "double":
            kw[field] = float(value)
        elif SPEC_BY_NAME[name].kind == "integer":
            kw[field] = int(value)
        else:
            kw[field] = bool(value)
    return LiveSettings(**{**cur.__dict__, **kw})


LIVE_FIELDS = {"diagnostics.stall_s": "stall_s"}  # parameter name -> LiveSettings field


# ------------------------------------------------------------------------- rclpy-facing parts


def descriptor(spec: ParamSpec, managed: bool = False) -> Any:
    """rcl_interfaces ParameterDescriptor of ``spec`` (type, range, description, read_only:
    every parameter read only at start-up, except, in a ``managed`` (lifecycle) node, those
    read at configure, which may change while it is unconfigured)."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    types = {"string": ParameterType.PARAMETER_STRING, "double": ParameterType.PARAMETER_DOUBLE,
             "integer": ParameterType.PARAMETER_INTEGER, "bool": ParameterType.PARAMETER_BOOL,
             "string_array": ParameterType.PARAMETER_STRING_ARRAY,
             "double_array": ParameterType.PARAMETER_DOUBLE_ARRAY}
    d = ParameterDescriptor(name=spec.name, type=types[spec.kind], description=spec.description,
                            read_only=spec.read_only or (not spec.live and not managed))
    if spec.float_range is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                     to_value=float(spec.float_range[1]))]
    if spec.int_range is not None:
        d.integer_range = [IntegerRange(from_value=spec.int_range[0],
                                        to_value=spec.int_range[1], step=1)]
    notes = []
    if spec.choices:
        notes.append("one of: " + ", ".join(spec.choices))
    if not spec.live:
        notes.append(RESTART_NOTE)
    d.additional_constraints = "; ".join(notes)
    return d


def read(node: Any) -> tuple[StartupSettings, LiveSettings]:
    """The validated start-up and live settings from ``node``'s current parameter values."""
    values = {spec.name: _value(node, spec.name) for spec in SPECS}
    for name in (s.name for s in SPECS if s.live):
        reason = check_value(name, values[name])
        if reason:
            raise ConfigError(f"parameter {reason}")
    return startup_from(values), live_from(values)


def value_of(node: Any, name: str) -> Any:
    """A declared parameter's value; None while it has none (an unset string array)."""
    return _value(node, name)


def _value(node: Any, name: str) -> Any:
    """A declared parameter's value; None while it has none (an unset string array)."""
    from rclpy.exceptions import ParameterUninitializedException

    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None


def qos_profile(reliability: str, depth: int, durability: str) -> Any:
    """QoSProfile for the input subscriptions from the qos.* parameter values."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    rel = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE,
           "system_default": ReliabilityPolicy.SYSTEM_DEFAULT}[reliability]
    dur = {"volatile": DurabilityPolicy.VOLATILE,
           "transient_local": DurabilityPolicy.TRANSIENT_LOCAL,
           "system_default": DurabilityPolicy.SYSTEM_DEFAULT}[durability]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=rel,
                      durability=dur)
