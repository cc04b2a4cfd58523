"""INT8 (onnxruntime QDQ) vs fp32 model latency on the CPU at the model's input size (keys name
it, e.g. 384x288), 2 intra-op threads.

Uses ``models/camvid.onnx`` and ``models/camvid.int8.onnx`` when present (quantizing on the fly
into a temp folder when only the float model exists); otherwise a small stand-in network at
360x480, quantized on CamVid train frames, so the benchmark always runs. Engine inference only
(pre/post-processing are in bench_segmenter).
"""

from __future__ import annotations

import statistics
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from seg_ros.engines import open_engine
from seg_ros.live.models import shipped_or_tiny_model
from seg_ros.timing import median_ms

REPO = Path(__file__).resolve().parents[1]
CAMVID_TRAIN = REPO.parent / "shared" / "datasets" / "camvid" / "train"
ROUNDS = 7


def _models() -> tuple[Path, Path]:
    from seg_ros.engines.quantize import quantize_onnx

    fp32, int8 = REPO / "models" / "camvid.onnx", REPO / "models" / "camvid.int8.onnx"
    tmp = Path(tempfile.mkdtemp(prefix="bench_int8_"))
    if not fp32.is_file():
        fp32 = shipped_or_tiny_model((360, 480))
        int8 = tmp / "tiny.int8.onnx"
    if not int8.is_file():
        int8 = quantize_onnx(fp32, CAMVID_TRAIN, tmp / int8.name, calib_frames=32).out
    return fp32, int8


def run() -> dict[str, float]:
    fp32_path, int8_path = _models()
    engines = {name: open_engine(path, backend="onnxruntime", threads=2)
               for name, path in (("fp32", fp32_path), ("int8", int8_path))}
    shape = engines["fp32"].input_shape  # whatever the shipped model's input is
    assert engines["int8"].input_shape == shape, (engines["int8"].input_shape, shape)
    batch = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    # Interleaved rounds: a load change on a shared machine hits both models alike.
    rounds: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(ROUNDS):
        for name, engine in engines.items():
            rounds[name].append(median_ms(partial(engine.infer, batch), repeats=10, warmup=2))
    times = {name: statistics.median(v) for name, v in rounds.items()}
    size = f"{shape[3]}x{shape[2]}"
    return {
        f"int8_model_latency_ms_{size}": times["int8"],
        f"fp32_model_latency_ms_{size}": times["fp32"],
        "int8_speedup": times["fp32"] / times["int8"],
    }
