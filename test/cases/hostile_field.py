"""Hostile cases of the second field round: odometry, time, parameter types and lifecycle.

The in-stream cases (:data:`RAW_CASES`) run on a :class:`~cases.hostile.HostileRig`
after cases.hostile's own; they subscribe ~/floor_map (and the picture outputs) only
while they run, and feed nav_msgs/Odometry at 50 Hz. The cases with a node of their own
(:data:`STANDALONE_CASES`) take the model path. Each asserts what the node must report and
returns what it measured. Used by test/node/test_hostile.py and benchmarks/soak.py.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cases.hostile import OK, WARN, HostileRig, settle
from seg_ros.live import LiveClient, NodeProcess, param_args, pick_domain, wait_for

REPO = Path(__file__).resolve().parents[2]
PICTURES = ("confidence", "color_mask", "overlay")


# ------------------------------------------------------------------------------ odometry


def odometry(x: float, y: float, q: tuple[float, float, float, float]
             ) -> Callable[[Any], Any]:
    """An odom_maker: the robot at (x, y) with orientation quaternion q (x, y, z, w)."""
    from nav_msgs.msg import Odometry

    def make(header: Any) -> Any:
        msg = Odometry(header=header, child_frame_id="base_footprint")
        p = msg.pose.pose
        p.position.x, p.position.y = float(x), float(y)
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = map(float, q)
        return msg
    return make


def yaw_q(yaw: float, scale: float = 1.0) -> tuple[float, float, float, float]:
    return (0.0, 0.0, scale * math.sin(yaw / 2), scale * math.cos(yaw / 2))


class MapWatch:
    """~/floor_map and the picture outputs subscribed for one case (unsubscribed on exit)."""

    def __init__(self, rig: HostileRig, pictures: bool = True) -> None:
        from nav_msgs.msg import OccupancyGrid
        from sensor_msgs.msg import Image

        self.rig = rig
        self.subs = [("floor_map", rig.watch("floor_map", OccupancyGrid, latched=True,
                                             metered=False))]
        if pictures:
            self.subs += [(o, rig.watch(o, Image)) for o in PICTURES]

    def __enter__(self) -> MapWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        for output, sub in self.subs:
            self.rig.unwatch(output, sub)

    def fused(self) -> int:
        return self.rig.counter("floor_map_frames_fused")

    def fusing(self, timeout: float = 20.0) -> int:
        """Wait until more frames are fused than now; the count then."""
        n0 = self.fused()
        return wait_for(lambda: (n := self.fused()) > n0 + 2 and n, timeout,
                        f"frames to be fused again:\n{self.rig.node.tail(8)}")


def _refused(before: int, word: str) -> Callable[[int, str, dict[str, str]], bool]:
    """A diagnostics predicate: WARN or worse naming ``word``, and more than five odometry
    messages refused since ``before``."""
    return lambda lvl, m, v: (lvl >= WARN and word in m
                              and int(v.get("floor_map_odom_rejected", 0)) > before + 5)


def _count(rig: HostileRig, key: str) -> int:
    """A /diagnostics counter of the node (0 while the node does not report it)."""
    return int(rig.client.diagnostics(rig.node_fqn, timeout=5.0)[2].get(key, 0))


def case_bad_odometry(rig: HostileRig) -> dict[str, Any]:
    """NaN / inf odometry and x = 1e300: refused where they enter (counted, WARN naming
    odometry and the field); confidence, colour mask and overlay keep flowing; nothing is
    fused while only bad poses come; the map resumes with the next good pose."""
    bad = {"NaN x": ((math.nan, 0.0, yaw_q(0.0)), "position.x"),
           "NaN quaternion": ((0.0, 0.0, (0.0, 0.0, math.nan, 1.0)), "orientation.z"),
           "inf y": ((0.0, math.inf, yaw_q(0.0)), "position.y"),
           "x 1e300": ((1e300, 0.0, yaw_q(0.0)), "outside any plausible world")}
    out: dict[str, Any] = {}
    stages = rig.client.diagnostics(rig.node_fqn)[2].get("output_stage_failures", "")
    with MapWatch(rig) as watch:
        rig.odom_maker = odometry(0.0, 0.0, yaw_q(0.0))
        watch.fusing()
        for name, (pose, field) in bad.items():
            before = _count(rig, "floor_map_odom_rejected")
            rig.odom_maker = odometry(*pose)
            time.sleep(0.5)  # frames at the bad pose are being segmented
            for output in PICTURES:  # the frame's other outputs are unaffected
                rig.flowing(output, n=5, timeout=15)
            rig.diag(_refused(before, "odometry"), 15,
                     f"{name} odometry refused with a WARN naming odometry")
            fused = watch.fused()
            rig.flowing("labels", n=5, timeout=15)
            assert watch.fused() <= fused + 1, f"{name}: frames fused from a refused pose"
            assert field in rig.node.log(), f"{name}: no log line naming {field!r}"
            assert "Traceback" not in rig.node.log()
            rig.odom_maker = odometry(0.0, 0.0, yaw_q(0.0))
            t0 = time.monotonic()
            watch.fusing()
            out[f"odometry_{name.replace(' ', '_')}_resume_s"] = time.monotonic() - t0
        values = rig.client.diagnostics(rig.node_fqn)[2]
        assert values.get("output_stage_failures", "") == stages, "a stage failed on odometry"
        out["odometry_rejected"] = int(values["floor_map_odom_rejected"])
    settle(rig)
    return out


def _known_bearing(grid: Any, x: float, y: float) -> float:
    """Bearing (degrees) from (x, y) of the centroid of the map's known cells."""
    cells = np.asarray(grid.data, np.int8).reshape(grid.info.height, grid.info.width)
    rows, cols = np.nonzero(cells >= 0)
    assert rows.size, "the map has no known cell"
    res, o = grid.info.resolution, grid.info.origin.position
    cx, cy = o.x + (cols.mean() + 0.5) * res, o.y + (rows.mean() + 0.5) * res
    return math.degrees(math.atan2(cy - y, cx - x))


def case_odometry_quaternions(rig: HostileRig) -> dict[str, Any]:
    """A quaternion off unit by more than tf2's tolerance (90 degrees scaled x2) or zero is
    refused and counted; one within it (x1.004) is normalised and fused at its yaw."""
    out: dict[str, Any] = {}
    with MapWatch(rig, pictures=False) as watch:
        for name, q in (("x2", yaw_q(math.pi / 2, 2.0)), ("zero", (0.0, 0.0, 0.0, 0.0))):
            rig.odom_maker = odometry(40.0, 40.0, yaw_q(0.0))
            watch.fusing()
            before = _count(rig, "floor_map_odom_rejected")
            rig.odom_maker = odometry(40.0, 40.0, q)
            rig.diag(_refused(before, "quaternion"), 15, f"the {name} quaternion refused")
            fused = watch.fused()
            rig.flowing("labels", n=5)
            assert watch.fused() <= fused + 1, f"frames fused at a {name} quaternion"
        # far from the poses above: the rolling window moves and sees only this pose's cells
        rig.odom_maker = odometry(80.0, 80.0, yaw_q(math.pi / 2, 1.004))
        rejected = _count(rig, "floor_map_odom_rejected")
        watch.fusing()
        wait_for(lambda: (m := rig.last_msg.get("floor_map")) is not None
                 and m.info.origin.position.x > 60, 15, "the map around (80, 80)")
        time.sleep(1.5)  # the next map, with several frames at this pose
        bearing = _known_bearing(rig.last_msg["floor_map"], 80.0, 80.0)
        assert _count(rig, "floor_map_odom_rejected") == rejected, "a near-unit q refused"
        assert abs(bearing - 90.0) < 10.0, f"fused at bearing {bearing:.1f}, not 90"
        out["near_unit_quaternion_bearing_deg"] = bearing
    settle(rig)
    return out


def case_time_goes_back(rig: HostileRig) -> dict[str, Any]:
    """Stamps jump back 60 s (a simulator reset, a bag loop) after the pose buffer filled
    (9 s of 50 Hz odometry): detected, logged once, the map fuses on."""
    with MapWatch(rig, pictures=False) as watch:
        rig.odom_maker = odometry(0.0, 0.0, yaw_q(0.0))
        n0 = rig.counter("floor_map_odom_received")
        wait_for(lambda: rig.counter("floor_map_odom_received") > n0 + 450, 40,
                 "the pose buffer to fill")
        jumps, logged = _count(rig, "floor_map_time_jumps"), rig.node.log().count("jumped back")
        t0 = time.monotonic()
        rig.stamp_offset_ns = -60 * 10**9
        watch.fusing(timeout=20)
        resumed = time.monotonic() - t0
        rig.level(OK, timeout=20)
        assert _count(rig, "floor_map_time_jumps") == jumps + 1
        assert rig.node.log().count("jumped back") == logged + 1, rig.node.tail(10)
        rig.stamp_offset_ns = 0  # and forward again: no jump, fusing goes on
        watch.fusing(timeout=20)
    settle(rig)
    return {"time_back_resume_s": resumed}


def case_integer_for_double(rig: HostileRig) -> dict[str, Any]:
    """Set over the SetParameters service (as ``ros2 param set`` does): an integer for a double
    is taken as that double, a string is refused naming the type; start-up parameters are
    read-only with the one wording 'restart the node'."""
    from rcl_interfaces.srv import DescribeParameters, GetParameters

    for name, value in (("max_rate_hz", 50), ("overlay_alpha", 1), ("map.hit", 1),
                        ("diagnostics.stall_s", 1)):
        res = rig.set_params(**{name: value})[0]
        assert res.successful, (name, res.reason)
    got = rig.client.call(f"{rig.node_fqn}/get_parameters", GetParameters,
                          GetParameters.Request(names=["max_rate_hz", "overlay_alpha"])).values
    assert [(v.type, v.double_value) for v in got] == [(3, 50.0), (3, 1.0)], got
    wrong = rig.set_params(overlay_alpha="high")[0]
    # the node's own refusal, or rclpy's on Jazzy ("... expected 'Type.DOUBLE' got ...")
    assert not wrong.successful and "double" in wrong.reason.lower(), wrong.reason
    restart = ("model_path", "workers", "cameras", "qos.depth")
    for name, new in zip(restart, ("x.onnx", 2, ["a"], 3), strict=True):
        res = rig.set_params(**{name: new})[0]
        assert not res.successful and res.reason.startswith(f"restart the node to change {name}"
                                                            ), (name, res.reason)
    desc = rig.client.call(f"{rig.node_fqn}/describe_parameters", DescribeParameters,
                           DescribeParameters.Request(names=list(restart))).descriptors
    assert all(d.read_only and "restart the node" in d.additional_constraints for d in desc), [
        (d.name, d.read_only, d.additional_constraints) for d in desc]
    cli = _ros2_param_set(rig, "max_rate_hz", "40")  # the real tool, where it is installed
    assert cli is None or "Set parameter successful" in cli, cli
    cli = _ros2_param_set(rig, "workers", "3")
    assert cli is None or "restart the node to change workers" in cli, cli
    back = rig.set_params(max_rate_hz=0.0, overlay_alpha=0.5,
                          **{"map.hit": 0.85, "diagnostics.stall_s": 1.0})
    assert all(r.successful for r in back), back
    settle(rig)
    return {"integer_for_double_sets": 4, "ros2_param_set_checked": cli is not None}


def _ros2_param_set(rig: HostileRig, name: str, value: str) -> str | None:
    """``ros2 param set`` on the rig's node (its output), or None where ros2cli's param verb
    is not installed."""
    import shutil

    from seg_ros.ros.dds import local_env

    ros2 = shutil.which("ros2", path=str(Path(sys.executable).parent)) or shutil.which("ros2")
    if ros2 is None:
        return None
    cmd = [ros2, "param", "set", "--no-daemon", rig.node_fqn, name, value]
    out = ""
    for _ in range(5):  # without the daemon discovery can miss the node on a loaded machine
        run = subprocess.run(cmd, env=local_env(rig.domain), capture_output=True, text=True,
                             timeout=60)
        out = run.stdout + run.stderr
        if "invalid choice: 'param'" in out:
            return None
        if "Node not found" not in out:
            return out
    return out


def case_one_stage_fails(rig: HostileRig) -> dict[str, Any]:
    """An all-zero camera_info with ~/camera_info subscribed: that output's stage fails (one
    line naming it, counted in output_stage_failures, WARN); labels, overlay and the frame's
    accounting go on (before, the exception cost the rest of the frame: frames_processed
    stopped and /diagnostics showed Python's text)."""
    from sensor_msgs.msg import CameraInfo, Image

    info_sub = rig.watch("camera_info", CameraInfo, metered=False)
    overlay_sub = rig.watch("overlay", Image)
    try:
        n0 = rig.counts.get("camera_info", 0)
        wait_for(lambda: rig.counts.get("camera_info", 0) > n0 + 2, 15, "~/camera_info")
        processed, failed = rig.counter("frames_processed"), rig.counter("frames_failed")
        rig.info_k, rig.info_extra = (0.0,) * 9, {"width": 0, "height": 0}
        _l, _m, values = rig.diag(
            lambda lvl, _m, v: lvl >= WARN and "camera_info=" in v.get("output_stage_failures",
                                                                       ""), 15,
            "the camera_info stage's failure counted")
        rig.flowing("labels", n=5)
        rig.flowing("overlay", n=5)
        now = rig.client.diagnostics(rig.node_fqn)[2]
        assert int(now["frames_processed"]) >= processed + 5, "frames no longer accounted"
        assert int(now["frames_failed"]) == failed, "a stage failure failed the whole frame"
        assert "camera_info unusable" in now["last_error"], now["last_error"]
        assert "Traceback" not in now["last_error"] and "\n" not in now["last_error"]
    finally:
        rig.unwatch("camera_info", info_sub)
        rig.unwatch("overlay", overlay_sub)
    settle(rig)
    return {"stage_failures": values["output_stage_failures"]}


RAW_CASES = (case_one_stage_fails, case_bad_odometry, case_odometry_quaternions,
             case_time_goes_back, case_integer_for_double)


# ------------------------------------------------------------------ nodes of their own


def _start(model: Path, args: list[str], params_file: Path | None = None) -> tuple[int, str]:
    """``seg-ros node`` with ``args``; (exit code, stderr) when it exits by itself within 60 s,
    else (-1, the log once it is segmenting) after stopping it."""
    from seg_ros.ros.dds import local_env

    cmd = [sys.executable, "-m", "seg_ros.cli", "node"]
    cmd += ["--params-file", str(params_file)] if params_file else []
    cmd += ["--ros-args", *param_args({"model_path": model, "threads": 1}), *args]
    proc = subprocess.Popen(cmd, env=local_env(pick_domain()), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        wait_for(lambda: proc.poll() is not None or any("segmenting" in x for x in lines), 90,
                 "the node to start or exit")
    finally:
        started = proc.poll() is None
        if started:
            proc.send_signal(2)
            proc.wait(20)
        reader.join(5)
    return -1 if started else proc.returncode, "".join(lines)


WRONG_TYPES = ("overlay_alpha:=high", "workers:=2.0", "enabled:=maybe", "jpeg_quality:=high",
               "unknown_below:=[1]", "model_path:=5", "grid.resolution:=abc", "map.hit:=yes",
               "depth.max_skew_ms:=x")


def case_parameter_types_at_start(model: Path, tmp: Path) -> dict[str, Any]:
    """``-p max_rate_hz:=5`` and ``overlay_alpha: 1`` (params file, whole-number arrays too)
    start the node; every other type mismatch is one line naming the parameter, exit 2."""
    yaml = tmp / "whole_numbers.yaml"
    yaml.write_text("/**:\n  ros__parameters:\n    overlay_alpha: 1\n    map.hit: 1\n"
                    "    camera_pose: [0, 0, 1, 0, 0, 0]\n")
    rc, log = _start(model, ["-p", "max_rate_hz:=5"], yaml)
    assert rc == -1 and "Traceback" not in log, (rc, log[-2000:])
    for arg in WRONG_TYPES:
        rc, log = _start(model, ["-p", arg])
        name = arg.split(":=")[0]
        ours = [x for x in log.splitlines() if x.startswith("[segmentation_node] error")]
        assert rc == 2 and "Traceback" not in log and len(ours) == 1, (arg, rc, log[-2000:])
        assert f"parameter {name} is given" in ours[0] and ":=" in ours[0], ours[0]
    return {"wrong_type_starts_refused": len(WRONG_TYPES)}


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


HANG_S = 10.0  # seconds the faulty engine spends on each frame


def _wait_left(node: NodeProcess, times: int) -> None:
    wait_for(lambda: node.log().count("(detached) left the engine") >= times, 3 * HANG_S,
             f"the detached worker to leave:\n{node.tail(8)}")


def case_deactivate_with_stuck_engine(model: Path, tmp: Path) -> dict[str, Any]:
    """A managed node whose engine takes 10 s a frame, deactivated while a frame is inside it,
    three cycles: each deactivate (5 s of waiting) detaches the worker visibly (logged,
    workers_detached), the detached worker publishes nothing while inactive, the next
    activation's worker waits for it (never two in one engine), the image subscription stays
    one, the threads do not grow."""
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from seg_ros.ros.convert import to_image_msg

    domain, name = pick_domain(), "stuck_lifecycle"
    node = NodeProcess([*param_args({"model_path": model, "threads": 1,
                                     "backend": "fault_backend:FaultyEngine"}),
                        "-r", "image:=/stuck_cam/image", "-r", f"__node:={name}"], domain,
                       name=name,
                       module=("-m", "seg_ros.cli", "node", "--lifecycle"),
                       env={"PYTHONPATH": str(REPO / "test"), "SEG_ROS_FAULT_HANG_S": str(HANG_S)})
    client = LiveClient(domain)
    pub = client.publisher(Image, "/stuck_cam/image", depth=1)
    arrivals: list[float] = []
    client.node.create_subscription(Image, f"/{name}/labels",
                                    lambda _m: arrivals.append(time.monotonic()), 5)
    stop = threading.Event()
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)

    def stream() -> None:
        while not stop.wait(0.1):
            h = Header(frame_id="cam")
            h.stamp.sec, h.stamp.nanosec = divmod(time.time_ns(), 10**9)
            try:
                pub.publish(to_image_msg(rgb, "rgb8", h))
            except Exception:
                return

    def transition(tid: int) -> float:
        t0 = time.monotonic()
        req = ChangeState.Request(transition=Transition(id=tid))
        assert client.call(f"/{name}/change_state", ChangeState, req, timeout=60).success
        return time.monotonic() - t0

    streamer = threading.Thread(target=stream, daemon=True)
    out: dict[str, Any] = {}
    try:
        wait_for(lambda: node.alive() and f"/{name}/change_state" in {
            n for n, _ in client.node.get_service_names_and_types()}, 60, "the managed node")
        streamer.start()
        transition(Transition.TRANSITION_CONFIGURE)
        threads, subs, deact_s = [], [], []
        for cycle in range(3):
            transition(Transition.TRANSITION_ACTIVATE)
            subs.append(pub.get_subscription_count())
            if cycle:  # the new worker takes frames once the detached one left the engine
                _wait_left(node, cycle)
            time.sleep(1.5)  # a frame is inside the engine call by now
            deact_s.append(transition(Transition.TRANSITION_DEACTIVATE))
            inactive_from = time.monotonic()
            assert node.log().count("detached (") == cycle + 1, node.tail(10)
            time.sleep(0.5)
            assert pub.get_subscription_count() == 0, "the image subscription outlived deactivate"
            threads.append(_threads(node.pid))
        time.sleep(HANG_S - 5.0)  # the last detached worker leaves the engine while inactive
        late = [t for t in arrivals if t > inactive_from]
        assert not late, f"{len(late)} labels published while inactive"
        values = client.diagnostics(f"/{name}", timeout=10)[2]
        assert int(values["workers_detached"]) == 3, values["workers_detached"]
        assert subs == [1, 1, 1], subs
        assert threads[2] <= threads[0], f"threads grew over the cycles: {threads}"
        out = {"stuck_deactivate_s_max": max(deact_s), "stuck_threads": threads[-1]}
    finally:
        stop.set()
        client.close()
        rc = node.stop(timeout=20)
    assert rc == 0, (rc, node.tail(20))
    return out


STANDALONE_CASES = (case_parameter_types_at_start, case_deactivate_with_stuck_engine)
