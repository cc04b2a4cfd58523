"""Batched inference across cameras: the per-camera mailbox set (latest frame wins per camera,
round-robin fairness, the batch_wait_ms window) and a batch of N frames through one engine call
giving the same labels as N single calls, on real ONNX models with a fixed and a dynamic batch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from seg_ros.engines import open_engine
from seg_ros.live import camvid_frames, make_tiny_model
from seg_ros.pipeline import CameraMailboxes, Frame
from seg_ros.segmenter import Segmenter


def frame(camera: str, seq: int) -> Frame:
    return Frame(msg=f"{camera}{seq}", t_receive=time.monotonic(), seq=seq, camera=camera)


# ----------------------------------------------------------------------------- mailboxes


def test_latest_frame_wins_per_camera_and_drops_are_counted_per_camera() -> None:
    box = CameraMailboxes(["front", "left", "rear"])
    for seq in range(5):
        box.put("front", frame("front", seq))  # flooding: four overwritten
    box.put("left", frame("left", 10))
    taken = box.take_batch(max_batch=3, timeout=0.1)
    assert [f.msg for f in taken] == ["front4", "left10"]
    assert box.dropped_by == {"front": 4, "left": 0, "rear": 0}
    assert box.dropped == 4


def test_round_robin_serves_every_camera_when_a_batch_has_fewer_slots() -> None:
    cams = ["a", "b", "c"]
    box = CameraMailboxes(cams)
    served: list[str] = []
    for seq in range(30):
        for c in cams:  # every camera always has a frame waiting; "a" floods
            box.put(c, frame(c, seq))
        box.put("a", frame("a", seq))
        served += [f.camera for f in box.take_batch(max_batch=1, timeout=0.1)]
    assert {c: served.count(c) for c in cams} == {"a": 10, "b": 10, "c": 10}
    assert served[:6] == ["a", "b", "c", "a", "b", "c"]


def test_take_never_waits_for_a_slow_camera_by_default() -> None:
    box = CameraMailboxes(["a", "b"])
    box.put("a", frame("a", 1))
    t0 = time.monotonic()
    assert [f.msg for f in box.take_batch(max_batch=2, wait_s=0.0, timeout=1.0)] == ["a1"]
    assert time.monotonic() - t0 < 0.05


def test_batch_wait_gathers_frames_arriving_within_the_window() -> None:
    box = CameraMailboxes(["a", "b", "c"])
    box.put("a", frame("a", 1))
    threading.Timer(0.05, lambda: box.put("b", frame("b", 2))).start()
    taken = box.take_batch(max_batch=3, wait_s=0.5, timeout=1.0)
    assert sorted(f.msg for f in taken) == ["a1", "b2"]  # c never came: the window ended it


def test_batch_wait_ends_as_soon_as_the_batch_is_full() -> None:
    box = CameraMailboxes(["a", "b"])
    box.put("a", frame("a", 1))
    threading.Timer(0.05, lambda: box.put("b", frame("b", 2))).start()
    t0 = time.monotonic()
    assert len(box.take_batch(max_batch=2, wait_s=5.0, timeout=1.0)) == 2
    assert time.monotonic() - t0 < 1.0


def test_close_releases_a_waiting_take() -> None:
    box = CameraMailboxes(["a"])
    threading.Timer(0.05, box.close).start()
    assert box.take_batch(max_batch=1, timeout=5.0) == []


def test_camera_names_must_be_distinct() -> None:
    with pytest.raises(ValueError, match="distinct"):
        CameraMailboxes(["a", "a"])


# ---------------------------------------------------------------------------- batch = loop


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch_models")
    return {"fixed1": make_tiny_model(d / "b1.onnx", batch=1),
            "fixed4": make_tiny_model(d / "b4.onnx", batch=4),
            "dynamic": make_tiny_model(d / "bdyn.onnx", batch=0),
            "logits": make_tiny_model(d / "logits.onnx", batch=0, output_kind="logits")}


@pytest.mark.parametrize("kind", ["fixed1", "fixed4", "dynamic", "logits"])
def test_a_batch_of_n_frames_gives_the_labels_of_n_single_calls(
        models: dict[str, Path], kind: str) -> None:
    seg = Segmenter(open_engine(models[kind], "onnxruntime", threads=1))
    assert seg.max_batch == {"fixed1": 1, "fixed4": 4, "dynamic": 0, "logits": 0}[kind]
    # three cameras of different sizes, plus two more frames: 5 frames, a partial chunk of 4
    sizes = [(640, 480), (320, 240), (800, 600), (640, 480), (480, 360)]
    rgbs = [camvid_frames(1 + i, size)[i] for i, size in enumerate(sizes)]
    single = [seg(rgb) for rgb in rgbs]
    per_frame = seg.infer_batch(seg.preprocess_batch(rgbs), want_confidence=True)
    assert len(per_frame) == len(rgbs)
    for rgb, outputs, ref in zip(rgbs, per_frame, single):
        got = seg.postprocess(outputs, rgb.shape[:2])
        assert got.labels.shape == rgb.shape[:2]
        np.testing.assert_array_equal(got.labels, ref.labels)
        assert ref.confidence is not None and got.confidence is not None
        assert np.abs(got.confidence.astype(int) - ref.confidence).max() <= 1


def test_batched_graphs_load_with_their_batch_size(models: dict[str, Path]) -> None:
    import onnx

    dims = {k: onnx.load(str(p)).graph.input[0].type.tensor_type.shape.dim[0]
            for k, p in models.items()}
    assert dims["fixed1"].dim_value == 1 and dims["fixed4"].dim_value == 4
    assert dims["dynamic"].dim_param == "batch"


# ------------------------------------------------------------------ shipped example set-up


def test_cameras_params_file_names_three_cameras_and_only_real_parameters() -> None:
    import yaml

    from seg_ros.ros import floor_config, params
    from seg_ros.ros.camera_floor import camera_pose_from

    repo = Path(__file__).resolve().parents[2]
    values = yaml.safe_load((repo / "config" / "cameras.yaml").read_text())["/**"][
        "ros__parameters"]
    cams = params.camera_names(values["cameras"])
    assert cams == ("front", "left", "rear")
    known = {s.name for s in params.SPECS} | {s.name for s in floor_config.SPECS} | {
        "grid.merge", *(f"{c}.camera_pose" for c in cams)}
    assert set(values) <= known, set(values) - known
    for c in cams:
        assert camera_pose_from(values[f"{c}.camera_pose"], c) is not None
    assert params.startup_from({**{s.name: s.default for s in params.SPECS}, **values}).cameras \
        == ("front", "left", "rear")


def test_cameras_launch_file_remaps_each_camera_to_its_driver() -> None:
    import importlib.util

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("cameras_launch",
                                                  repo / "launch" / "cameras.launch.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # imports neither launch nor launch_ros
    assert mod.remappings({"front": "/front_camera/", "rear": "/rear_camera"}) == [
        ("front/image", "/front_camera/image_raw"),
        ("front/image/compressed", "/front_camera/image_raw/compressed"),
        ("front/camera_info", "/front_camera/camera_info"),
        ("rear/image", "/rear_camera/image_raw"),
        ("rear/image/compressed", "/rear_camera/image_raw/compressed"),
        ("rear/camera_info", "/rear_camera/camera_info")]
    # the params file's model and input_transport stand unless given on the command line
    assert mod.overrides("", "") == {}
    assert mod.overrides("m.onnx", "compressed") == {"model_path": "m.onnx",
                                                     "input_transport": "compressed"}


@pytest.mark.parametrize("value, error", [
    (["front", "front"], "lists a camera twice"),
    (["front", "2nd"], "'2nd' is not a valid camera name"),
    (["front/left"], "not a valid camera name"),
])
def test_bad_camera_names_are_refused_with_the_fix(value: list[str], error: str) -> None:
    from seg_ros.errors import ConfigError
    from seg_ros.ros import params

    with pytest.raises(ConfigError, match=error):
        params.camera_names(value)
    assert params.camera_names([""]) == () and params.camera_names(None) == ()


def test_export_batch_argument() -> None:
    from seg_ros.cli.export import parse_batch
    from seg_ros.errors import ConfigError

    assert (parse_batch("dynamic"), parse_batch("1"), parse_batch("3")) == (0, 1, 3)
    for bad in ("0", "-2", "two"):
        with pytest.raises(ConfigError, match="give a batch size N >= 1 or 'dynamic'"):
            parse_batch(bad)


def test_merged_grid_occupied_wins_then_free_then_unknown() -> None:
    from seg_ros.ros.camera_floor import merge_grids

    a = np.array([[-1, 0, 100, -1, 0]], np.int8)
    b = np.array([[-1, -1, 0, 100, 0]], np.int8)
    c = np.array([[-1, -1, -1, -1, 100]], np.int8)
    np.testing.assert_array_equal(merge_grids([a, b, c]), [[-1, 0, 100, 100, 100]])
    np.testing.assert_array_equal(merge_grids([a]), a)


def test_camera_pose_parameter_is_checked() -> None:
    from seg_ros.errors import ConfigError
    from seg_ros.ros.camera_floor import camera_pose_from

    assert camera_pose_from(None, "front.camera_pose") is None
    assert camera_pose_from([], "front.camera_pose") is None
    with pytest.raises(ConfigError, match=r"front.camera_pose \[1.0, 2.0\] must be 6 finite"):
        camera_pose_from([1.0, 2.0], "front.camera_pose")


def test_cameras_triggered_together_share_a_batch_and_take_turns_at_being_first() -> None:
    """Three cameras at one phase arrive a fraction of a millisecond apart: the frame of a
    camera due now is waited for (COALESCE_S), and the camera served first rotates."""
    import threading
    import time

    from seg_ros.pipeline import CameraMailboxes, Frame

    box = CameraMailboxes(("front", "left", "rear"))
    firsts = []
    for k in range(6):
        t0 = time.monotonic()
        box.put("front", Frame(k, t0, camera="front"))
        late = threading.Thread(target=lambda: [box.put(c, Frame(k, t0, camera=c))  # noqa: B023
                                                for c in ("left", "rear")])
        late.start()
        taken = box.take_batch(max_batch=3, timeout=1.0)
        late.join()
        if k >= 2:  # once each camera's period is known
            assert len(taken) == 3, [f.camera for f in taken]
            firsts.append(taken[0].camera)
        else:
            while box.take_batch(max_batch=3, timeout=0.01):
                pass
        time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))
    assert set(firsts) == {"front", "left", "rear"}, firsts


def test_a_stopped_camera_is_not_waited_for() -> None:
    import time

    from seg_ros.pipeline import CameraMailboxes, Frame

    box = CameraMailboxes(("front", "rear"))
    for _ in range(3):
        box.put("rear", Frame(0, 0.0, camera="rear"))
        box.put("front", Frame(0, 0.0, camera="front"))
        box.take_batch(max_batch=2, timeout=0.1)
        time.sleep(0.02)
    time.sleep(0.2)  # rear stops: its next frame is long overdue
    box.put("front", Frame(1, 0.0, camera="front"))
    t0 = time.monotonic()
    assert [f.camera for f in box.take_batch(max_batch=2, timeout=1.0)] == ["front"]
    assert time.monotonic() - t0 < 0.1  # COALESCE_S at most, not a period
