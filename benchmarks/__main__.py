"""`make bench`: run every benchmarks/bench_*.py, print medians, merge into results.json.

Each module exposes ``run() -> dict[str, float]`` returning medians measured in that one run
(keys name the quantity and unit, e.g. ``postprocess_ms_640x480``). Run a subset with
``python -m benchmarks codec segmenter``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
CHART = HERE / "results.png"

# (label, key) of the per-stage chart: one 640x480 frame with every output on
STAGES = (
    ("decode rgb8", "decode_ms_rgb8_640x480"),
    ("pre-process", "preprocess_ms_640x480"),
    ("inference", "engine_latency_ms_640x480"),
    ("post-process", "node_stage_postprocess_ms_640x480"),
    ("colour mask", "color_mask_ms_640x480"),
    ("overlay", "overlay_ms_640x480"),
    ("floor grid", "grid_update_ms_200x200"),
    ("publish x4", "node_stage_publish_ms_640x480"),
)
HEADLINE = ("model_latency_ms_480x360", "postprocess_ms_640x480", "grid_update_ms_200x200",
            "points_build_ms_640x480", "depth_grid_update_ms_200x200",
            "node_overhead_ratio", "node_overhead_ratio_floor", "node_worker_over_engine",
            "throughput_hz_640x480", "throughput_hz_1280x720", "vs_reference_throughput_ratio",
            "vs_reference_latency_ratio")


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    # A full run starts afresh (every figure from this one run); a subset merges into the file.
    results: dict[str, object] = (json.loads(RESULTS.read_text())
                                  if argv and RESULTS.exists() else {})
    for name in names:
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        figures = importlib.import_module(f"benchmarks.{name}").run()
        for key, value in figures.items():
            shown = f"{value:.3f}" if isinstance(value, float) else value
            print(f"  {key:<44} {shown}")
        results.update(figures)
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    results["_machine"] = _machine()
    RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")
    _summary(results)
    try:
        chart(results, CHART)
        print(f"wrote {CHART}")
    except ImportError as e:  # matplotlib is optional
        print(f"no chart ({e})")
    return 0


def _summary(results: dict[str, object]) -> None:
    print("== summary (medians, this run)")
    for key in HEADLINE:
        value = results.get(key)
        print(f"  {key:<44} {value:.3f}" if isinstance(value, float) else f"  {key:<44} -")


def chart(results: dict[str, object], path: Path) -> None:
    """Three panels: per-stage ms at 640x480; latency (engine, node, reference); throughput
    (seg_ros vs the reference node) at 640x480 and 1280x720."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def get(key: str) -> float:
        v = results.get(key)
        return float(v) if isinstance(v, int | float) else float("nan")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    ax = axes[0]
    labels = [lab for lab, _ in STAGES]
    vals = [get(k) for _, k in STAGES]
    bars = ax.barh(labels[::-1], vals[::-1], color="#4c72b0")
    ax.bar_label(bars, fmt="%.3g", padding=2, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(v for v in vals if v == v) * 5)  # room for the largest bar's label
    ax.set_xlabel("ms per frame (log)")
    ax.set_title("stages, 640x480 frame")
    ax = axes[1]
    names = ["bare\nengine\n1 thread", "engine +\ntransport\nfloor", "node\nworker",
             "node:\nlabels\nreceived", "node: all\n4 outputs\nreceived",
             "seg_ros\n2 threads,\n20 Hz in", "reference,\n20 Hz in\n(better of\n1, 2 thr.)"]
    engine = get("engine_latency_ms_640x480")
    vals = [engine, engine + get("transport_floor_ms_640x480"),
            get("node_stage_worker_ms_640x480"), get("node_labels_latency_ms_640x480"),
            get("node_latency_ms_640x480"), get("latency_ms_640x480"),
            get("reference_latency_ms_640x480")]
    bars = ax.bar(names, vals, color=["#999999", "#bbbbbb", "#8da0cb", "#4c72b0", "#4c72b0",
                                      "#4c72b0", "#dd8452"])
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_ylabel("ms, median")
    ax.set_title(f"latency 640x480\nnode / engine: labels {get('node_labels_overhead_ratio'):.2f}x,"
                 f" all {get('node_overhead_ratio'):.2f}x (transport floor "
                 f"{get('node_overhead_ratio_floor'):.2f}x); vs reference "
                 f"{get('vs_reference_latency_ratio'):.2f}x", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax = axes[2]
    sizes = ["640x480", "1280x720"]
    x = range(len(sizes))
    seg = [get(f"throughput_hz_{s}") for s in sizes]
    ref = [get(f"reference_throughput_hz_{s}") for s in sizes]
    b1 = ax.bar([i - 0.2 for i in x], seg, 0.4, label="seg_ros (1 thread, 2 workers)",
                color="#4c72b0")
    b2 = ax.bar([i + 0.2 for i in x], ref, 0.4, label="reference (better of 1, 2 threads)",
                color="#dd8452")
    ax.bar_label(b1, fmt="%.1f", fontsize=8)
    ax.bar_label(b2, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(x), sizes)
    ax.set_ylabel("frames out per second (all 4 outputs)")
    ax.set_title(f"throughput, input flooded\nseg_ros / reference "
                 f"{get('vs_reference_throughput_ratio'):.2f}x at 640x480", fontsize=9)
    ax.legend()
    fig.suptitle(f"seg_ros make bench - {results.get('_machine', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
