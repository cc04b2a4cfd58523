"""A model exported from PyTorch with no card, carded with `seg-ros card`, run by a real node
process in which `import onnx` fails: the node needs onnxruntime alone, and its labels agree
with onnxruntime run directly on the same frame (argmax of the bilinearly upsampled scores)."""

from __future__ import annotations

import importlib.util
import json
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

from foreign_models import IMAGENET, SIZE, reference, tf2onnx_like  # noqa: E402
from torch_conventions import CARD_FLAGS, INPUT, Backbone, export, reference_labels  # noqa: E402

from seg_ros.cli import main  # noqa: E402
from seg_ros.live import (  # noqa: E402
    LiveClient,
    NodeProcess,
    node_module,
    pick_domain,
    wait_for,
)
from seg_ros.ros.convert import to_image_msg  # noqa: E402

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


def foreign_model(kind: str, tmp_path: Path, rgb: np.ndarray) -> tuple[Path, np.ndarray]:
    """(card-less model, onnxruntime's labels of ``rgb``): a PyTorch NCHW logits export, or a
    tf2onnx-style graph with an NHWC input and one channel of binary logits (1, h, w, 1)."""
    if kind == "torch_logits":
        model = export("logits", tmp_path / "foreign.onnx")
        return model, reference_labels(model, "logits", rgb)
    model = tf2onnx_like(tmp_path / "foreign.onnx", "logits1", seed=2)
    return model, reference(model, rgb, SIZE, IMAGENET, True, True, "logits1")


@pytest.mark.parametrize("kind", ["torch_logits", "tf_nhwc_binary_logits"])
def test_node_runs_a_carded_foreign_model_without_onnx(
        kind: str, camvid_frame: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    rgb = camvid_frame[0]
    model, want = foreign_model(kind, tmp_path, rgb)
    carded = tmp_path / "foreign.carded.onnx"
    assert main(["card", str(model), "--out", str(carded),
                 *(CARD_FLAGS["logits"] if kind == "torch_logits" else [])]) == 0
    domain = pick_domain()
    proc = NodeProcess(["-p", f"model_path:={carded}", "-p", "threads:=1",
                        "-r", "image:=/cam/image"], domain, module=node_module(),
                       env=without_onnx(tmp_path), log_path=tmp_path / "node.log")
    client = LiveClient(domain)
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
    assert len(np.unique(want)) > 1
    assert float((labels == want).mean()) >= 0.995


GROUPS = """\
groups:
  - {name: floor, classes: [Road, Pavement], traversable: true}
  - {name: obstacle, classes: rest}
"""


@pytest.mark.parametrize("fmt", ["onnx", "pt"])
def test_bag_eval_and_label_info_see_the_groups(fmt, camvid_dir, tmp_path):
    """A card-less 11-class export (ONNX, or TorchScript with a sidecar), carded with CamVid's
    classes and two groups: `seg-ros bag eval` (through a real node) scores the groups, as
    `seg-ros eval` does, and the node's ~/label_info lists the groups."""
    from seg_ros.bag import open_reader, typestore
    from seg_ros.bag.make import make_bag

    net = Backbone(11).eval()
    x = torch.zeros(1, 3, *INPUT)
    (tmp_path / "g.yaml").write_text(GROUPS)
    spec = Path(__file__).resolve().parents[2] / "config" / "camvid_dataset.yaml"
    flags = ["--classes", str(spec), "--groups", str(tmp_path / "g.yaml")]
    if fmt == "onnx":
        model = tmp_path / "camvid_like.onnx"
        torch.onnx.export(net, x, str(model), input_names=["x"], output_names=["out"],
                          dynamo=False)
        carded = tmp_path / "grouped.onnx"
        assert main(["card", str(model), "--out", str(carded), *flags]) == 0
    else:
        carded = tmp_path / "grouped.pt"
        torch.jit.trace(net, x).save(str(carded))
        assert main(["card", str(carded), "--input-size", f"{INPUT[0]}x{INPUT[1]}",
                     *flags]) == 0
    bag = tmp_path / "bag"
    make_bag(camvid_dir / "val", bag, camvid_dir / "valannot", limit=3, rate=10.0,
             progress=False)
    report, out_bag = tmp_path / "r.json", tmp_path / "outputs"
    r = subprocess.run([sys.executable, "-m", "seg_ros.cli", "bag", "eval", str(bag), "--model",
                        str(carded), "--json", str(report), "--out", str(out_bag)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(report.read_text())
    assert rep["class_names"] == ["floor", "obstacle"] and rep["scored"] == 3
    assert main(["eval", str(carded), "--data", str(camvid_dir), "--limit", "3", "--json",
                 str(tmp_path / "eval.json")]) == 0
    ref = json.loads((tmp_path / "eval.json").read_text())
    assert ref["class_names"] == ["floor", "obstacle"]
    from seg_ros.bag.evaluate import _get

    assert abs(_get(rep["metrics"], "miou") - ref["miou"]) < 1e-3
    if importlib.util.find_spec("seg_ros.msg") is None:
        return  # interface not generated here: the node has no label_info
    reader = open_reader(out_bag)
    try:
        infos = [typestore().deserialize_cdr(raw, conn.msgtype)
                 for conn, _, raw in reader.messages()
                 if conn.topic == "/segmentation_node/label_info"]
    finally:
        reader.close()
    assert [list(i.class_names) for i in infos] == [["floor", "obstacle"]]
    assert list(infos[0].traversable) == [True, False]
