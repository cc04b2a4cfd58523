"""Latency of the shipped model (models/camvid.onnx): ONNX Runtime CPU, 2 intra-op threads,
one frame at the model's input size already normalised (graph only: no pre/post-processing),
median in ms: ``model_latency_ms_{W}x{H}``. When the model's input is not 480x360,
``model_latency_ms_480x360`` is a 480x360 CamVid frame through it (resize + normalise to the
model's input, then the graph)."""

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
    out = {f"model_latency_ms_{w}x{h}": median_ms(lambda: sess.run(None, {inp.name: x}),
                                                  repeats=40, warmup=5)}
    if (w, h) != (480, 360):
        # A 480x360 CamVid frame through the shipped model: resize + normalise to the model's
        # input (Segmenter.preprocess) + the graph, same session options.
        from seg_ros.engines import open_engine
        from seg_ros.segmenter import Segmenter

        seg = Segmenter(open_engine(MODEL, backend="onnxruntime", threads=2))
        frame = np.random.default_rng(1).integers(0, 256, (360, 480, 3), dtype=np.uint8)
        out["model_latency_ms_480x360"] = median_ms(
            lambda: seg.infer(seg.preprocess(frame)), repeats=40, warmup=5)
    return out
