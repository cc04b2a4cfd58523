"""Pure parts of seg_ros.ros: parameter rules, descriptors, QoS, message conversion."""

from __future__ import annotations

import array
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rcl_interfaces.msg import ParameterType
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from seg_ros.errors import CodecError, ConfigError
from seg_ros.model_card import CAMVID_CLASSES
from seg_ros.ros import convert, params

DEFAULTS = {s.name: s.default for s in params.SPECS}


def test_every_spec_has_a_valid_default_and_description() -> None:
    for spec in params.SPECS:
        assert params.check_value(spec.name, spec.default) is None, spec.name
        assert len(spec.description) > 20, spec.name
    assert set(params.RESTART_PARAMS) == {"model_path", "backend", "device", "threads", "workers",
                                          "input_transport"}


@pytest.mark.parametrize(("name", "value", "words"), [
    ("overlay_alpha", 1.5, ["overlay_alpha", "0..1"]),
    ("overlay_alpha", -0.1, ["outside"]),
    ("overlay_alpha", float("nan"), ["outside"]),
    ("overlay_alpha", True, ["outside"]),
    ("max_rate_hz", -1.0, ["max_rate_hz"]),
    ("threads", 1000, ["threads", "0..256"]),
    ("input_transport", "theora", ["raw", "compressed"]),
    ("qos.reliability", "sometimes", ["best_effort", "reliable"]),
])
def test_bad_values_are_refused_with_a_reason(name: str, value: object, words: list[str]) -> None:
    reason = params.check_value(name, value)
    assert reason is not None and all(w in reason for w in words), reason


def test_plugin_backend_accepted() -> None:
    assert params.check_value("backend", "my_pkg.engines:Factory") is None
    reason = params.check_value("backend", "openvino")
    assert reason is not None and "onnxruntime" in reason and "module:Class" in reason, reason


def test_registered_backend_is_a_valid_backend_parameter() -> None:
    """The parameter takes the engines' own list: a registered backend is not refused."""
    from seg_ros.engines import _REGISTERED, register_backend
    from seg_ros.model_card import ModelCard, camvid_card

    class Vendor:
        """A vendor runtime as the Engine protocol states it (never opened here)."""

        backend = "vendor_rt"
        card: ModelCard = camvid_card()
        input_shape = (1, 3, 360, 480)

        def infer(self, batch: np.ndarray, outputs: list[str] | None = None
                  ) -> dict[str, np.ndarray]:
            return {}

        def describe(self) -> str:
            return "vendor"

    assert params.check_value("backend", "vendor_rt") is not None
    register_backend("vendor_rt", Vendor)
    try:
        assert params.check_value("backend", "vendor_rt") is None
    finally:
        _REGISTERED.pop("vendor_rt")


def test_start_up_parameters_need_a_restart() -> None:
    for name in params.RESTART_PARAMS:
        reason = params.check_update(name, DEFAULTS[name])
        assert reason and "restart the node to change " + name in reason
    assert params.check_update("overlay_alpha", 0.2) is None
    assert params.check_update("publish_overlay", False) is None


def test_class_filter_names_and_ids() -> None:
    assert params.parse_class_filter(["road", " 4 ", "", "Road"], CAMVID_CLASSES) == (3, 4)
    assert params.parse_class_filter(None, CAMVID_CLASSES) == ()
    assert params.parse_class_filter([""], CAMVID_CLASSES) == ()
    with pytest.raises(ConfigError, match="Lava.*choose from Sky"):
        params.parse_class_filter(["Lava"], CAMVID_CLASSES)
    with pytest.raises(ConfigError, match=r"id 11 is outside 0\.\.10"):
        params.parse_class_filter(["11"], CAMVID_CLASSES)
    reason = params.check_update("class_filter", ["Sky", "Lava"], CAMVID_CLASSES)
    assert reason and "Lava" in reason


def test_live_settings_merge_and_ignore_start_up_params() -> None:
    live = params.live_from({"overlay_alpha": 1, "class_filter": ["Road"], "model_path": "x"})
    assert live.overlay_alpha == 1.0 and live.class_filter == ("Road",)
    live2 = params.live_from({"publish_overlay": False}, live)
    assert live2.class_filter == ("Road",) and not live2.publish_overlay
    assert params.live_from({"class_filter": None}).class_filter == ()


def test_startup_settings_and_default_model_path(tmp_path: Path) -> None:
    s = params.startup_from(DEFAULTS)
    assert s.model_path == params.default_model_path()
    assert s.model_path.name == "camvid.onnx" and s.input_transport == "raw"
    assert params.startup_from({**DEFAULTS, "model_path": str(tmp_path / "m.onnx")}).model_path \
        == tmp_path / "m.onnx"
    with pytest.raises(ConfigError, match="input_transport"):
        params.startup_from({**DEFAULTS, "input_transport": "ffmpeg"})


def test_descriptors_carry_type_range_and_read_only() -> None:
    d = params.descriptor(params.SPEC_BY_NAME["overlay_alpha"])
    assert d.type == ParameterType.PARAMETER_DOUBLE and not d.read_only
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0, 1)
    d = params.descriptor(params.SPEC_BY_NAME["qos.depth"])
    assert d.read_only and d.integer_range[0].to_value == 1000
    d = params.descriptor(params.SPEC_BY_NAME["model_path"])
    assert "restart" in d.additional_constraints
    d = params.descriptor(params.SPEC_BY_NAME["class_filter"])
    assert d.type == ParameterType.PARAMETER_STRING_ARRAY


def test_every_start_up_parameter_is_read_only_with_one_wording() -> None:
    """read_only in the plain node; in the managed node only those that are read_only even
    there (read at configure otherwise: they may change while unconfigured)."""
    for spec in params.SPECS:
        d, managed = params.descriptor(spec), params.descriptor(spec, managed=True)
        assert d.read_only == (not spec.live), spec.name
        assert managed.read_only == spec.read_only, spec.name
        assert (params.RESTART_NOTE in d.additional_constraints) == (not spec.live), spec.name
    assert params.restart_reason("cameras").startswith("restart the node to change cameras")


def test_failure_cause_is_one_line_with_where_it_was_raised() -> None:
    from seg_ros.ros.stages import failure_cause

    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError as e:
        cause = failure_cause(e)
    assert "\n" not in cause and cause.startswith("internal error ZeroDivisionError at ")
    assert "test_ros_params.py:" in cause and "division by zero" in cause
    assert failure_cause(ConfigError("camera_info unusable:\n  zero size")) == (
        "camera_info unusable: zero size")


def test_qos_profile() -> None:
    q = params.qos_profile("best_effort", 1, "volatile")
    assert q.reliability == ReliabilityPolicy.BEST_EFFORT and q.depth == 1
    q = params.qos_profile("reliable", 5, "transient_local")
    assert q.reliability == ReliabilityPolicy.RELIABLE
    assert q.durability == DurabilityPolicy.TRANSIENT_LOCAL


# ------------------------------------------------------------------------------ convert


def _header() -> Header:
    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = 12, 345
    return h


def test_image_round_trip_keeps_header_and_pixels() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    msg = convert.to_image_msg(rgb, "rgb8", _header())
    assert isinstance(msg.data, array.array) and msg.step == 30 and msg.encoding == "rgb8"
    assert convert.stamp_ns(msg.header) == 12_000_000_345 and msg.header.frame_id == "cam"
    np.testing.assert_array_equal(convert.image_to_rgb(msg), rgb)
    labels = rng.integers(0, 300, (6, 10)).astype(np.uint16)
    msg16 = convert.to_image_msg(labels, "mono16", _header())
    assert msg16.step == 20 and len(msg16.data) == 120
    np.testing.assert_array_equal(np.frombuffer(msg16.data, "<u2").reshape(6, 10), labels)


def test_bad_image_raises_codec_error() -> None:
    msg = Image(height=4, width=4, encoding="rgb8", step=12)
    msg.data = convert.byte_array(bytes(10))
    with pytest.raises(CodecError, match="truncated"):
        convert.image_to_rgb(msg)


def test_output_message_is_fast_to_fill() -> None:
    """msg.data from the codec's memoryview: a memcpy, not rclpy's per-byte check."""
    rgb = np.zeros((480, 640, 3), np.uint8)
    convert.to_image_msg(rgb, "rgb8", _header())
    t0 = time.perf_counter()
    for _ in range(10):
        convert.to_image_msg(rgb, "rgb8", _header())
    assert (time.perf_counter() - t0) / 10 < 0.01  # per-byte assignment takes ~100 ms


def test_camera_model_from_camera_info_msg() -> None:
    """The one CameraInfo conversion path: the floor module reads the rclpy message itself."""
    from seg_ros.errors import ConfigError
    from seg_ros.floor import CameraModel

    msg = CameraInfo(header=_header(), width=640, height=480, distortion_model="plumb_bob")
    msg.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    msg.d = [0.1, -0.2, 0.0, 0.0, 0.0]
    cam = CameraModel.from_camera_info(msg)
    assert cam.K[4] == 510.0 and cam.D == (0.1, -0.2, 0.0, 0.0, 0.0)
    assert (cam.image_width, cam.image_height) == (640, 480)
    with pytest.raises(ConfigError, match="uncalibrated"):
        CameraModel.from_camera_info(CameraInfo(width=640, height=480))


def test_occupancy_grid_msg() -> None:
    cells = np.array([[0, 100, -1], [0, 0, 100]], np.int8)
    msg = convert.occupancy_grid_msg(cells, 0.05, (1.0, -2.0), _header())
    assert (msg.info.width, msg.info.height, msg.info.resolution) == (3, 2, pytest.approx(0.05))
    assert list(msg.data) == [0, 100, -1, 0, 0, 100]
    assert msg.info.origin.position.y == -2.0 and msg.header.frame_id == "cam"


def test_rviz_config_shows_the_outputs() -> None:
    import yaml

    repo = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((repo / "config" / "seg_ros.rviz").read_text())["Visualization Manager"]
    assert cfg["Global Options"]["Fixed Frame"] == "base_footprint"
    shown = {(d["Class"], d.get("Topic", {}).get("Value")) for d in cfg["Displays"]}
    assert ("rviz_default_plugins/Image", "/segmentation_node/overlay") in shown
    assert ("rviz_default_plugins/Image", "/segmentation_node/color_mask") in shown
    assert ("rviz_default_plugins/Map", "/segmentation_node/floor_grid") in shown


def test_params_file_names_every_parameter() -> None:
    import yaml

    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "config" / "camvid.yaml").read_text())
    values = doc["/**"]["ros__parameters"]
    from seg_ros.model_card import CAMVID_CLASSES
    from seg_ros.ros import depth_hook, floor_config, floor_map

    floor = {s.name for s in floor_config.SPECS}
    others = {s.name for m in (floor_map, depth_hook) for s in m.SPECS}
    assert set(values) == set(DEFAULTS) | floor | others
    for name, value in values.items():
        assert params.check_value(name, value) is None, name
    floor_config.config_from({n: values[n] for n in floor}, CAMVID_CLASSES, (3, 4))  # no raise


def test_max_rate_below_a_frame_per_100_s_is_refused_and_names_are_suggested() -> None:
    from seg_ros.ros.params import check_value, closest_name

    reason = check_value("max_rate_hz", 1e-12)
    assert reason is not None and "below 0.01 Hz" in reason
    assert check_value("max_rate_hz", 0.0) is None and check_value("max_rate_hz", 0.01) is None
    assert closest_name("overlay_alfa", ["overlay_alpha", "max_rate_hz"]) == (
        " (did you mean overlay_alpha?)")
    assert closest_name("zzz", ["overlay_alpha"]) == ""


def test_start_up_messages_are_one_readable_line() -> None:
    from seg_ros.ros.node_params import _readable_types
    from seg_ros.ros.runner import _ros_args_error

    assert _readable_types("expected '3' got '4'") == "expected 'double' got 'string'"
    line = _ros_args_error(RuntimeError(
        "failed to initialize rcl: Couldn't parse log level: '--log-level bogus'. Error: "
        "Argument does not use a valid severity level, at /project/src/rcl/arguments.c:1860, "
        "at /project/src/rcl/arguments.c:441"))
    assert "/project" not in line and "\n" not in line
    assert line.startswith("invalid ROS arguments: Couldn't parse log level")
    assert "--log-level debug|info" in line
