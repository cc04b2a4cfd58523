"""A model exported from PyTorch with no card, carded with `seg-ros card`, run by a real node
process in which `import onnx` fails: the node needs onnxruntime alone, and its labels agree
with onnxruntime run directly on the same frame (argmax of the bilinearly upsampled scores)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
torch = pytest.importorskip("torch")

from test_conventions import CARD_FLAGS, export, reference_labels  # noqa: E402

from benchmarks.liveproc import Client, node_module, pick_domain, wait_for  # noqa: E402
from seg_ros.cli import main  # noqa: E402
from seg_ros.ros.convert import to_image_msg  # noqa: E402
from seg_ros.ros.process import NodeProcess  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

BLOCK_ONNX = '''\
import sys


class _NoOnnx:
    """Makes `import onnx` fail in this process, as on a robot without the package."""

    def find_spec(self, name, path=None, target=None):
        if name == "onnx" or name.startswith("onnx."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoOnnx())
'''


def without_onnx(tmp_path: Path) -> dict[str, str]:
    """Environment whose Python cannot import onnx (a sitecustomize shim on PYTHONPATH)."""
    shim = tmp_path / "no_onnx"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BLOCK_ONNX)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(shim),
                                                       os.environ.get("PYTHONPATH")]))}
    probe = subprocess.run([sys.executable, "-c", "import onnxruntime, onnx"],
                           env={**os.environ, **env}, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'onnx'" in probe.stderr, probe.stderr
    return env


def test_node_runs_a_carded_foreign_model_without_onnx(camvid_frame, tmp_path):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    model = export("logits", tmp_path / "foreign.onnx")
    carded = tmp_path / "foreign.carded.onnx"
    assert main(["card", str(model), "--out", str(carded), *CARD_FLAGS["logits"]]) == 0
    rgb = camvid_frame[0]
    domain = pick_domain()
    proc = NodeProcess(["-p", f"model_path:={carded}", "-p", "threads:=1",
                        "-r", "image:=/cam/image"], domain, module=node_module(),
                       env=without_onnx(tmp_path), log_path=tmp_path / "node.log")
    client = Client(domain)
    got: dict[int, Any] = {}
    lock = threading.Lock()

    def on_labels(msg: Any) -> None:
        with lock:
            got[msg.header.stamp.nanosec] = msg

    try:
        pub = client.publisher(Image, "/cam/image", depth=1)
        client.node.create_subscription(Image, "/segmentation_node/labels", on_labels,
                                        QoSProfile(depth=5,
                                                   reliability=ReliabilityPolicy.RELIABLE))

        def ready() -> bool:
            assert proc.alive(), f"node exited:\n{proc.tail()}"
            return (pub.get_subscription_count() > 0
                    and client.node.count_publishers("/segmentation_node/labels") > 0)

        wait_for(ready, 90, "the node to start")
        header = Header(frame_id="camera")
        header.stamp.sec, header.stamp.nanosec = 1_700_000_000, 4242
        msg = to_image_msg(rgb, "rgb8", header)
        end = time.monotonic() + 30
        while time.monotonic() < end and 4242 not in got:
            pub.publish(msg)  # again until discovery has settled
            time.sleep(0.5)
        with lock:
            assert 4242 in got, f"no labels for the frame:\n{proc.tail()}"
            out = got[4242]
    finally:
        client.close()
        rc = proc.stop()
    assert rc == 0, proc.tail()
    assert "Traceback" not in proc.log()
    labels = np.frombuffer(bytes(out.data), np.uint8).reshape(out.height, out.step)[:, :out.width]
    want = reference_labels(model, "logits", rgb)
    assert len(np.unique(want)) > 1
    assert float((labels == want).mean()) >= 0.995
