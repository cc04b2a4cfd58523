"""`make soak` (minutes, not in `make test`): the node under overload, over time, and fuzzed.

1. Sustainable rate R: frames flooded at 640x480 rgb8 with every output subscribed for 8 s;
   R = complete output sets per second.
2. Overload: 4 R for 60 s: RSS growth, latency (publish -> last output of that frame, p50/p99),
   frames dropped (the one-slot mailbox, latest wins). ``overload_p99_over_engine`` = that p99
   over the node's own median engine time (from /diagnostics).
3. Endurance: 0.9 R for 10 minutes (``SEG_ROS_SOAK_MINUTES`` to change): RSS sampled every 10 s;
   ``rss_growth_mb_10min`` = median RSS of the last minute - median of the first minute after a
   30 s warm-up.
4. The full fuzz run (test/cases/fuzz.py): >= 10,000 malformed messages.
5. The hostile pass (test/cases/hostile.py): every in-stream case against a raw and a
   compressed node, timed; ``blind_seconds`` = total time any subscribed output was silent
   beyond the node's limit while frames arrived and /diagnostics said OK. Must be 0. Then
   test/cases/hostile_sensors.py's cases (several cameras, depth) on their own rigs, and
   test/cases/hostile_field.py's (odometry and time on the raw node; parameter types at
   start and a deactivate with a worker stuck in the engine on nodes of their own).

Writes benchmarks/soak.json. Every process uses seg_ros.ros.dds.local_env.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from seg_ros.live import (
    OUTPUTS,
    LiveClient,
    NodeProcess,
    param_args,
    pick_domain,
    rss_mb,
    stream,
)
from seg_ros.live.models import camvid_frames, shipped_or_tiny_model
from seg_ros.pipeline import NODE_NAME

HERE = Path(__file__).resolve().parent
# The hostile and fuzz passes run the test suite's own cases (test/cases/, kept out of the
# installed package): test/ goes on the import path, as pytest puts it there for the tests.
if str(HERE.parent / "test") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "test"))
OUT = HERE / "soak.json"
# The node as set up for a loaded 2-core CPU: one frame per core, one intra-op thread each
# (an intra-op pool split over both cores stalls whenever another thread takes one of them).
SETUP = {"threads": 1, "workers": 2}
# ... and as set up for the lowest single-frame latency (both cores on one frame): overload only.
LATENCY_SETUP = {"threads": 2, "workers": 1}
NODE = f"/{NODE_NAME}"


class _Load:
    """One node process under a camera stream: its publisher, output counter and client."""

    def __init__(self, model: Path, setup: dict[str, int]) -> None:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from seg_ros.ros.convert import to_image_msg

        domain = pick_domain()
        self.node = NodeProcess([*param_args({"model_path": model, **setup}),
                                 "-r", "image:=/soak/image"], domain)
        self.client = LiveClient(domain)
        self.pub = self.client.publisher(Image, "/soak/image", depth=1)
        self.msgs = [to_image_msg(f, "rgb8", Header()) for f in camvid_frames(8)]
        self.counter = self.client.count_outputs(NODE, OUTPUTS)
        try:
            self.client.wait_ready(self.node, self.pub, NODE, OUTPUTS)
        except BaseException:
            self.close()
            raise
        time.sleep(1.0)

    def close(self) -> int | None:
        """Client closed, node stopped; the node's exit code."""
        self.client.close()
        return self.node.stop()

    def stream(self, hz: float, seconds: float, tick: Any = None) -> dict[int, float]:
        return stream(self.pub, self.msgs, hz, seconds, "soak_camera", tick)

    def latencies(self, sent: dict[int, float]) -> list[float]:
        """ms from publishing to the last output, of the frames in ``sent`` that came back."""
        return [(t - sent[s]) * 1e3 for s, t in self.counter.complete() if s in sent]

    def sustainable_rate(self) -> float:
        """Frames per second with every output, flooding at 200 Hz (after a warm-up)."""
        self.stream(200.0, 3.0)
        n0, t0 = len(self.counter.complete()), time.monotonic()
        self.stream(200.0, 8.0)
        time.sleep(0.5)
        return (len(self.counter.complete()) - n0) / (time.monotonic() - t0)

    def overload(self, rate: float) -> dict[str, Any]:
        """4x the sustainable rate for 60 s: drops, latency tail against the engine's, RSS."""
        _l, _m, before = self.client.diagnostics(NODE)
        rss0 = rss_mb(self.node.pid)
        sent = self.stream(4 * rate, 60.0)
        time.sleep(1.0)
        _l, _m, after = self.client.diagnostics(NODE)
        lat = self.latencies(sent)
        engine = float(after["engine_median_ms"])
        return {
            "overload_rate_hz": 4 * rate,
            "overload_frames_sent": len(sent),
            "overload_frames_out": len(lat),
            "overload_frames_dropped": int(after["frames_dropped"]) - int(
                before["frames_dropped"]),
            "overload_latency_p50_ms": float(np.percentile(lat, 50)),
            "overload_latency_p99_ms": float(np.percentile(lat, 99)),
            "overload_engine_median_ms": engine,
            # the engine's own tail under that load: how much of the latency p99 it explains
            "overload_engine_p99_ms": float(after["engine_p99_ms"]),
            "overload_p99_over_engine": float(np.percentile(lat, 99)) / engine,
            "overload_rss_growth_mb": rss_mb(self.node.pid) - rss0,
        }

    def endurance(self, rate: float, minutes: float) -> dict[str, Any]:
        """0.9 x the sustainable rate for ``minutes``: latency, failures, RSS every 10 s."""
        samples: list[tuple[float, float]] = []
        next_sample = [0.0]

        def tick(elapsed: float) -> None:
            if elapsed >= next_sample[0]:
                samples.append((elapsed, rss_mb(self.node.pid)))
                next_sample[0] += 10.0

        seconds = minutes * 60.0
        sent = self.stream(0.9 * rate, seconds, tick)
        time.sleep(1.0)
        _l, _m, end = self.client.diagnostics(NODE)
        first = [r for t, r in samples if 30.0 <= t < 90.0] or [samples[0][1]]
        last = [r for t, r in samples if t >= seconds - 60.0] or [samples[-1][1]]
        lat = self.latencies(sent)
        return {
            "endurance_minutes": minutes,
            "endurance_rate_hz": 0.9 * rate,
            "endurance_frames_sent": len(sent),
            "endurance_frames_out": len(lat),
            "endurance_latency_p50_ms": float(np.percentile(lat, 50)),
            "endurance_latency_p99_ms": float(np.percentile(lat, 99)),
            "rss_start_mb": statistics.median(first),
            "rss_end_mb": statistics.median(last),
            f"rss_growth_mb_{minutes:g}min": statistics.median(last) - statistics.median(first),
            "rss_samples_mb": [round(r, 1) for _t, r in samples],
            "endurance_frames_failed": int(end["frames_failed"]),
            "node_alive": self.node.alive(),
        }


def run_load(model: Path, minutes: float, setup: dict[str, int]) -> dict[str, Any]:
    """Sustainable rate and 4x overload; then, when ``minutes`` > 0, the endurance run."""
    load = _Load(model, setup)
    out: dict[str, Any] = {}
    try:
        rate = out["sustainable_rate_hz"] = load.sustainable_rate()
        print(f"  sustainable rate {rate:.1f} Hz", flush=True)
        out.update(load.overload(rate))
        print(f"  overload: {json.dumps({k: v for k, v in out.items() if 'overload' in k})}",
              flush=True)
        if minutes > 0:
            out.update(load.endurance(rate, minutes))
    finally:
        out["node_exit_code"] = load.close()
    return out


def run_hostile(model: Path) -> dict[str, Any]:
    """Every hostile case, timed, on a raw and a compressed node; blind_seconds over all."""
    import tempfile

    from cases import hostile, hostile_compressed, hostile_field

    out: dict[str, Any] = {}
    blind, episodes = 0.0, []
    for name, compressed, cases in (("soak_hostile_raw", False,
                                     hostile.RAW_CASES + hostile_field.RAW_CASES),
                                    ("soak_hostile_cmp", True,
                                     hostile_compressed.COMPRESSED_CASES)):
        rig = hostile.HostileRig(model, name, compressed=compressed)
        try:
            rig.start_streaming()
            hostile.settle(rig)
            for case in cases:
                t0 = time.monotonic()
                out.update(case(rig))
                out[f"hostile_{case.__name__.removeprefix('case_')}_s"] = time.monotonic() - t0
                print(f"  {case.__name__}: {out[f'hostile_{case.__name__[5:]}_s']:.1f} s",
                      flush=True)
        finally:
            blind += rig.blind.blind_s
            episodes += rig.blind.episodes[:5]
            out[f"{name}_exit_code"] = rig.close()
    from cases import hostile_sensors  # several cameras and depth, own rigs

    sensors = hostile_sensors.run(model)
    out.update(sensors)
    for standalone in hostile_field.STANDALONE_CASES:  # parameter types, lifecycle: own nodes
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            out.update(standalone(model, Path(tmp)))
        out[f"hostile_{standalone.__name__.removeprefix('case_')}_s"] = time.monotonic() - t0
        print(f"  {standalone.__name__}: {time.monotonic() - t0:.1f} s", flush=True)
    out["blind_seconds"] = blind + sensors["sensors_blind_seconds"]
    out["blind_episodes"] = episodes
    return out


def main() -> int:
    from cases.fuzz import run_fuzz

    model = shipped_or_tiny_model()
    minutes = float(os.environ.get("SEG_ROS_SOAK_MINUTES", "10"))
    n_fuzz = int(os.environ.get("SEG_ROS_FUZZ_MESSAGES", "10002"))
    t0 = time.monotonic()
    print("== load (sustainable rate, 4x overload 60 s, endurance)", flush=True)
    results: dict[str, Any] = run_load(model, minutes, SETUP)
    results["setup"] = SETUP
    print(f"== overload with {LATENCY_SETUP}", flush=True)
    results.update({f"latency_setup_{k}": v for k, v in run_load(model, 0, LATENCY_SETUP).items()
                    if k != "node_exit_code"})
    print(f"== fuzz ({n_fuzz} messages)", flush=True)
    rep = run_fuzz(model, n_fuzz, check_every=100)
    results.update({
        "fuzz_messages": rep.messages,
        "fuzz_by_kind": rep.by_kind,
        "fuzz_crashes": rep.crashes,
        "fuzz_unanswered_good_frames": rep.unanswered,
        "fuzz_good_frames": rep.good_frames,
        "fuzz_rejected": rep.rejected,
        "fuzz_counters_add_up": rep.accounted,
        "fuzz_failed": rep.failed,
        "fuzz_floor_camera_info_errors": rep.floor_errors,
        "fuzz_rejection_log_lines": rep.rejection_log_lines,
        "fuzz_seconds": rep.seconds,
    })
    print("== hostile pass", flush=True)
    results.update(run_hostile(model))
    results["_machine"] = (f"{os.cpu_count()} cores; model {model.name}; "
                           f"soak {time.monotonic() - t0:.0f} s")
    OUT.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    for key in ("sustainable_rate_hz", "overload_p99_over_engine", "overload_frames_dropped",
                "latency_setup_overload_p99_over_engine",
                "rss_growth_mb_10min", "fuzz_messages", "fuzz_crashes", "blind_seconds"):
        print(f"  {key:<32} {results.get(key)}")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
