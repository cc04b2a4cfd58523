"""Never blind, never silent: the defects hostile testing found, each against a live node
process, with the diagnostics level, message and counters asserted (test/cases/hostile.py).

Two long-lived nodes (raw and compressed input) take the in-stream cases while a blind meter
checks that no subscribed output is ever silent beyond the node's limit with /diagnostics OK;
start-up, shutdown and worker death each get a node process of their own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

from cases import hostile, hostile_compressed, hostile_field

from seg_ros.live import NodeProcess, param_args, pick_domain, wait_for
from seg_ros.ros.dds import local_env

pytestmark = [pytest.mark.ros, pytest.mark.slow]
TEST_DIR = str(Path(__file__).resolve().parents[1])  # fault_backend.py


def _rig(model: Path, name: str, compressed: bool) -> Iterator[hostile.HostileRig]:
    rig = hostile.HostileRig(model, name, compressed=compressed)

    def start() -> None:
        rig.start_streaming()
        hostile.settle(rig)

    yield from hostile.closed_clean(rig, start)


@pytest.fixture(scope="module")
def raw_rig(tiny_model: Path) -> Iterator[hostile.HostileRig]:
    yield from _rig(tiny_model, "hostile_raw", compressed=False)


@pytest.fixture(scope="module")
def compressed_rig(tiny_model: Path) -> Iterator[hostile.HostileRig]:
    yield from _rig(tiny_model, "hostile_cmp", compressed=True)


@pytest.mark.parametrize("case", hostile.RAW_CASES, ids=lambda c: c.__name__)
def test_raw_input_case(raw_rig: hostile.HostileRig, case) -> None:
    case(raw_rig)
    assert raw_rig.node.alive()


@pytest.mark.parametrize("case", hostile_field.RAW_CASES, ids=lambda c: c.__name__)
def test_raw_input_field_case(raw_rig: hostile.HostileRig, case) -> None:
    """Odometry (NaN, inf, 1e300, quaternions), time going back, integers for doubles."""
    case(raw_rig)
    assert raw_rig.node.alive()


@pytest.mark.parametrize("case", hostile_field.STANDALONE_CASES, ids=lambda c: c.__name__)
def test_node_of_its_own_case(tiny_model: Path, tmp_path: Path, case) -> None:
    """Parameter types at start; deactivate with a worker stuck in the engine."""
    case(tiny_model, tmp_path)


@pytest.mark.parametrize("case", hostile_compressed.COMPRESSED_CASES, ids=lambda c: c.__name__)
def test_compressed_input_case(compressed_rig: hostile.HostileRig, case) -> None:
    case(compressed_rig)
    assert compressed_rig.node.alive()


# --------------------------------------------------------------------- start-up and shutdown


def _run_node(ros_args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg_ros.cli", "node", "--ros-args", *ros_args],
                          env={**local_env(pick_domain()), "PYTHONPATH": TEST_DIR},
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, rc, words", [
    (["-p", "model_path"], 2, "Couldn't parse parameter override rule"),
    (["--log-level", "bogus"], 2, "Couldn't parse log level"),
    (["--params-file", "BAD_YAML"], 2, "Couldn't parse params file"),
    (["-p", "model_path:=MODEL", "-p", "backend:=os:system"], 1, "not an engine class"),
    (["-p", "model_path:=MODEL_DIR"], 1, "is a directory"),
    (["-p", "model_path:=MODEL", "-p", "max_rate_hz:=1e-12"], 1, "below 0.01 Hz"),
], ids=["p-without-:=", "log-level", "params-yaml", "os:system", "dir-model", "rate-1e-12"])
def test_start_up_errors_are_one_line(args: list[str], rc: int, words: str, tmp_path: Path,
                                      tiny_model: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: [\n bar")
    fill = {"BAD_YAML": str(bad), "MODEL_DIR": str(tiny_model.parent), "MODEL": str(tiny_model)}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    out = _run_node(args)
    ours = [x for x in out.stderr.splitlines() if x.startswith("[segmentation_node]")]
    assert out.returncode == rc, (out.returncode, out.stderr[-2000:])
    # one line of ours; rcl itself may log one more ("Failed to parse global arguments")
    assert "Traceback" not in out.stderr and len(ours) == 1, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) <= 2, out.stderr[-2000:]
    assert words in ours[0] and ": " in ours[0], ours[0]


def test_typo_and_oversubscription_are_warned(tiny_model: Path) -> None:
    node = NodeProcess(param_args({"model_path": tiny_model, "overlay_alfa": 0.3,
                                   "threads": 8, "workers": 2}), pick_domain(), name="typo_node")
    try:
        wait_for(lambda: "segmenting" in node.log() or not node.alive(), 60, "the node to start")
        log = node.log()
        assert "'overlay_alfa' is not a parameter" in log and "did you mean overlay_alpha" in log
        assert "oversubscribed" in log and "threads x workers = 8 x 2" in log, log[-2000:]
    finally:
        assert node.stop() == 0


def _fault_node(model: Path, name: str, env: dict[str, str]) -> NodeProcess:
    return NodeProcess(param_args({"model_path": model, "threads": 1,
                                   "backend": "fault_backend:FaultyEngine"}),
                       pick_domain(), name=name, env={"PYTHONPATH": TEST_DIR, **env})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_the_model_loads_exits_cleanly(tiny_model: Path, sig: int) -> None:
    node = _fault_node(tiny_model, "loading_node", {"SEG_ROS_FAULT_LOAD_S": "6"})
    wait_for(lambda: "loading the model" in node.log(), 30, "the node to load its model")
    t0 = time.monotonic()
    node.proc.send_signal(sig)
    rc = node.proc.wait(15)
    took = time.monotonic() - t0
    log = node.log()
    assert rc == 0 and "Traceback" not in log, (rc, log[-2000:])
    assert "interrupted while starting" in log, log[-2000:]
    assert took < 8, f"exit took {took:.1f} s"
    node.stop()


def test_shutdown_with_a_hung_engine_is_bounded(tiny_model: Path) -> None:
    """A worker inside a 30 s engine call: SIGINT still exits within ~5 s, rc 0, no abort."""
    from cases.hostile import HostileRig

    rig = HostileRig(tiny_model, "hung_node", extra={"backend": "fault_backend:FaultyEngine"},
                     env={"PYTHONPATH": TEST_DIR, "SEG_ROS_FAULT_HANG_S": "30"})
    try:
        rig.start_streaming()
        rig.level(hostile.ERROR, timeout=20, contains="on one frame")  # the watchdog saw it
    finally:
        rig.blind.close()
        rig._stop.set()
        rig.client.close()
    t0 = time.monotonic()
    rc = rig.node.stop(timeout=15)
    took = time.monotonic() - t0
    assert rc == 0 and took < 9, (rc, took, rig.node.tail())
    assert "still inside the engine" in rig.node.log()


def test_worker_death_exits_non_zero(tiny_model: Path, tmp_path: Path) -> None:
    """An error escaping the worker's per-frame handling ends the process with code 70 (so
    launch's respawn restarts it), never a half-alive node without a worker."""
    from cases.hostile import HostileRig

    fatal = tmp_path / "die"
    rig = HostileRig(tiny_model, "dying_node", extra={"backend": "fault_backend:FaultyEngine"},
                     env={"PYTHONPATH": TEST_DIR, "SEG_ROS_FAULT_FATAL_FILE": str(fatal)})
    try:
        rig.start_streaming()
        rig.flowing("labels")
        fatal.touch()
        rc = rig.node.proc.wait(20)
    finally:
        rig.blind.close()
        rig._stop.set()
        rig.client.close()
    assert rc == 70, (rc, rig.node.tail())
    assert "worker thread seg_ros_worker0 died: WorkerDeath" in rig.node.log()
