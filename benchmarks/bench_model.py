"""Latency of the shipped model (models/camvid.onnx): ONNX Runtime CPU, 2 intra-op threads,
one 480x360 frame already normalised (graph only: no pre/post-processing), median in ms."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.timing import median_ms

MODEL = Path(__file__).resolve().parents[1] / "models" / "camvid.onnx"


def run() -> dict[str, float]:
    if not MODEL.is_file():
        print(f"  skipped: {MODEL} not found (train and export it: see README)")
        return {}
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(MODEL), so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    _n, _c, h, w = inp.shape
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    ms = median_ms(lambda: sess.run(None, {inp.name: x}), repeats=40, warmup=5)
    return {f"model_latency_ms_{w}x{h}": ms}
