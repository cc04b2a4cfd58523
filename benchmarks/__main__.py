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


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    results: dict[str, object] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
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
    return 0


def _machine() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
