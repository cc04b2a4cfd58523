"""Latency of the shipped model (models/camvid.onnx): ONNX Runtime CPU, 2 intra-op threads,
one frame at the model's input size already normalised (graph only: no pre/post-processing),
median in ms: ``model_latency_ms_{W}x{H}``. When the model's input is not 480x360,
``model_latency_ms_480x360`` is a 480x360 CamVid frame through it (resize + normalise to the
model's input, then the graph). ``engine_*_spinning`` / ``no_spinning``: the seg_ros engine with
ORT's intra-op spinning on / off (the A/B of the engine default), quiet and next to a busy
process."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from seg_ros.timing import median_ms

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
    out.update(_spinning(x))
    return out


def _spinning(x: np.ndarray, rounds: int = 5, runs: int = 6) -> dict[str, float]:
    """ORT intra-op spinning on (ORT's default) vs off (seg_ros's engine default), 2 threads,
    interleaved rounds, quiet and with one competing busy process (another node on the robot's
    CPU); median ms per run and CPU ms per run (this process)."""
    import subprocess
    import sys
    import time

    from seg_ros.engines import open_engine

    engines = {spin: open_engine(MODEL, backend="onnxruntime", threads=2, spin=spin)
               for spin in (True, False)}
    feed = x.reshape(engines[True].input_shape)
    for e in engines.values():
        e.infer(feed)
    out: dict[str, float] = {}
    for load in ("quiet", "busy"):
        hog = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
               if load == "busy" else None)
        try:
            ms: dict[bool, list[float]] = {True: [], False: []}
            cpu: dict[bool, float] = {True: 0.0, False: 0.0}
            for _ in range(rounds):
                for spin, e in engines.items():
                    c0 = time.process_time()
                    for _ in range(runs):
                        t0 = time.perf_counter()
                        e.infer(feed)
                        ms[spin].append((time.perf_counter() - t0) * 1e3)
                    cpu[spin] += time.process_time() - c0
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        for spin, name in ((True, "spinning"), (False, "no_spinning")):
            out[f"engine_ms_2threads_{load}_{name}"] = statistics.median(ms[spin])
            out[f"engine_cpu_ms_2threads_{load}_{name}"] = cpu[spin] * 1e3 / len(ms[spin])
        out[f"no_spinning_speedup_{load}"] = (statistics.median(ms[True]) /
                                              statistics.median(ms[False]))
    return out
