"""The node's /diagnostics: one DiagnosticStatus a second, its level chosen from what went wrong
in that period (so it returns to OK once the cause is gone) and from the output watchdog: an
output somebody subscribes to that stays silent while images arrive is WARN, then ERROR, with
the output and the likeliest reason in the message. A node never goes blind unreported.
"""

from __future__ import annotations

import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from seg_ros.pipeline import ERROR, OK, WARN, Silence, percentiles
from seg_ros.ros.cadence import DDS_CAUSE
from seg_ros.ros.cameras import batch_values, camera_health
from seg_ros.ros.compat import publisher_count

STALE_INPUT_S = 5.0   # no image for this long -> diagnostics WARN


class HealthReport:
    """Mixin of the segmentation node (seg_ros.ros.node.SegmentationCore): reads its stats,
    watchdog, hooks and settings; keeps only the previous period's counters."""

    stats: Any
    live: Any

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()  # type: ignore[attr-defined]
        msg.status = [self.diagnostics_status()]
        self.diag_pub.publish(msg)  # type: ignore[attr-defined]

    def diagnostics_status(self) -> DiagnosticStatus:
        """One DiagnosticStatus for the last period (rates, level) and the run (counters)."""
        st = self.stats
        now = time.monotonic()
        t_last, rx_last, px_last = self._last_diag
        dt = max(now - t_last, 1e-6)
        self._last_diag = (now, st.received, st.processed)
        silent = self._silent_outputs(now)
        level, message = self._level(now, px_last, silent)
        values = {
            "input_rate_hz": f"{(st.received - rx_last) / dt:.2f}",
            "output_rate_hz": f"{(st.processed - px_last) / dt:.2f}",
            **self._latency_values(),
            **self._counter_values(),
            "stalled_outputs": "; ".join(x.describe() for x in silent),
            "state": self.state_text(),
            **self.depth.diagnostics_values(),
            **{k: v for out in self.outputs for k, v in out.diagnostics_values().items()},
            **self._model_values(),
            **self._camera_values(),
            **self._reception_values(),
        }
        name = self.get_fully_qualified_name()  # type: ignore[attr-defined]
        return DiagnosticStatus(level=bytes([level]), name=f"{name}: segmentation",
                                message=message, hardware_id=name,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _counter_values(self) -> dict[str, str]:
        st = self.stats
        return {
            "frames_received": str(st.received),
            "frames_processed": str(st.processed),
            "frames_dropped": str(self.mailbox.dropped),
            "frames_rejected": str(st.rejected),
            "frames_failed": str(st.failed),
            "frames_idle": str(st.idle),
            "frames_unstamped": str(st.unstamped),
            "frames_paused": str(st.paused),
            "workers": str(len(self.workers)),
            "last_error": st.last_error,
            **{f"computed_{k}": str(v) for k, v in st.computed.items()},
            "parameter_refusals": str(self.param_refusals),
            "workers_detached": str(getattr(self, "workers_detached", 0)),
            **(self.stages.diagnostics_values() if hasattr(self, "stages") else {}),
        }

    def _model_values(self) -> dict[str, str]:
        return {"engine": self.engine.describe() if self.engine is not None else "(none)",
                "model": self.card.name if self.card is not None else "(none)",
                "model_path": str(self.startup.model_path) if self.startup else "",
                "input_topic": self._input_topics()}

    def _input_topics(self) -> str:
        if self.cameraset is not None:
            return self.cameraset.topics()
        sub = self.image_sub
        return sub.topic_name if sub is not None else "(not subscribed)"

    def _camera_values(self) -> dict[str, str]:
        """With several cameras: each camera's counters and the batch sizes of the engine."""
        if self.cameraset is None:
            return {}
        return {**self.cameraset.diagnostics_values(self.mailbox), **batch_values(self.stats)}

    def _latency_values(self) -> dict[str, str]:
        st = self.stats
        out = {}
        for key, samples in (("latency_receive", st.lat_receive_ms),
                             ("latency_stamp", st.lat_stamp_ms), ("engine", st.engine_ms)):
            med, p99 = percentiles(samples)
            out[f"{key}_median_ms"], out[f"{key}_p99_ms"] = f"{med:.2f}", f"{p99:.2f}"
        out.update({f"stage_{k}_median_ms": f"{percentiles(q)[0]:.3f}"
                    for k, q in st.stage_ms.items()})
        return out

    def _level(self, now: float, px_last: int, silent: list[Silence]) -> tuple[int, str]:
        """The most severe condition of this period; the first listed wins among equals."""
        st = self.stats
        seen = self._seen
        self._seen = (st.failed, st.rejected, self.param_refusals)
        failed, rejected, refused = (a - b for a, b in zip(self._seen, seen))
        found: list[tuple[int, str]] = []
        if self.fatal or (self.serving() and not all(w.is_alive() for w in self.workers)):
            found.append((ERROR, self.fatal or "worker thread stopped: restart the node"))
        if st.received > 0 and st.processed == 0 and st.rejected + st.failed > 0:
            found.append((ERROR, f"no frame processed: {st.last_error}"))
        if failed > 0 and st.processed == px_last:
            found.append((ERROR, f"every frame failing: {st.last_error}"))
        found += [(x.level, x.describe()) for x in silent]
        if self.serving():
            found += [h for out in self.outputs for h in out.health()]
            if (depth := self.depth.health())[0]:
                found.append(depth)
        if self.serving():
            found += self._input_health(now)
        if hasattr(self, "stages") and (stage := self.stages.health()):
            found.append((WARN, stage))  # one output lost frames; the others went out
        if hasattr(self, "detached_text") and (detached := self.detached_text()):
            found.append((WARN, detached))
        if failed + rejected > 0:
            found.append((WARN, f"bad frames: {st.last_error}"))
        if refused > 0:
            found.append((WARN, f"parameter refused: {self.last_param_error}"))
        if not found:
            return OK, "segmenting" if self.serving() else self.state_text()
        top = max(level for level, _ in found)
        return top, next(msg for level, msg in found if level == top)

    def _input_health(self, now: float) -> list[tuple[int, str]]:
        """Images lost on their way (half-blind, by the middleware's count or the stamps), none
        arriving (a publisher's QoS mismatched, or none at all), cameras gone quiet."""
        st = self.stats
        arriving = st.received > 0 and now - st.last_receive <= STALE_INPUT_S
        found = [(WARN, r.describe(self._camera_topic(c))) for c, r in self._half_blind(now)
                 if r.lost or arriving]  # by stamps: only while frames arrive
        if blind := self._matched_silence(now):
            found.append((WARN, blind))  # publishers there, their images lost on the way
        elif not arriving and not found:
            found.append((WARN, f"no images on {self._input_topics()}{self._refused_text()}"))
        elif arriving and self.cameraset is not None and self._input_since is not None:
            found += camera_health(self.cameraset, now, self._input_since, STALE_INPUT_S)
        return found

    def _refused_text(self) -> str:
        """Why no image arrives when a publisher's QoS could not match; "" otherwise."""
        refused = getattr(self, "refused_qos", {})
        return "".join(f": a publisher on {t} offers incompatible QoS ({p}), none of its images "
                       f"arrive: set qos.reliability / qos.durability to the camera's "
                       f"(ros2 topic info -v {t})" for t, p in refused.items())

    def _half_blind(self, now: float) -> list[tuple[str, Any]]:
        """(camera, Reception) of each input receiving well below its camera's rate."""
        cadence = getattr(self, "cadence", None)
        if cadence is None:
            return []
        return [(c, r) for c in cadence.cameras()
                if (r := cadence.half_blind(c, now)) is not None]

    def _camera_topic(self, camera: str) -> str:
        return f"camera {camera}" if camera else self._input_topics()

    def _matched_silence(self, now: float) -> str:
        """Why no image arrives although publishers are matched on the (single) image topic
        for ``diagnostics.stall_s``: their frames are lost on the way; "" otherwise."""
        sub = self.image_sub
        count = publisher_count(self, sub) if sub is not None and self.cameraset is None else 0
        if count == 0:
            self._matched_since: float | None = None
            return ""
        if getattr(self, "_matched_since", None) is None:
            self._matched_since = now
        quiet = now - max(self._matched_since or now, self.stats.last_receive)
        if quiet < self.live.stall_s:
            return ""
        return (f"half-blind: 0% of the camera's frames received on {sub.topic_name}: no image "
                f"for {quiet:.1f} s although {count} publisher(s) matched: {DDS_CAUSE}")

    def _reception_values(self) -> dict[str, str]:
        """Per camera (single camera: no prefix): received share of its frames and its rate."""
        cadence = getattr(self, "cadence", None)
        if cadence is None:
            return {}
        out = {}
        for c in cadence.cameras():
            r = cadence.reception(c)
            prefix = f"{c}." if c else ""
            out[f"{prefix}input_received_fraction"] = f"{r.fraction:.2f}" if r else "unknown"
            out[f"{prefix}camera_rate_hz"] = (f"{1.0 / r.period_s:.2f}" if r and r.period_s
                                              else "unknown")
            out[f"{prefix}input_lost_in_transport"] = str(r.lost if r else 0)
        return out

    def _silent_outputs(self, now: float) -> list[Silence]:
        """Outputs somebody subscribes to that have been silent too long while images arrive
        (none while the node is not serving: inactive, or paused by ~/enable)."""
        expected = list(dict.fromkeys(name for out in self.outputs
                                      for name in out.expected(self.live)))
        arriving = self.serving() and now - self.stats.last_receive <= STALE_INPUT_S
        return self.watchdog.check(expected if self.serving() else [],
                                   self._input_since if arriving else None,
                                   self.live.stall_s, self.live.max_rate_hz, self._why_silent,
                                   now)

    def _why_silent(self, output: str) -> str:
        """The likeliest reason ``output`` has been silent, for the diagnostics message."""
        now, st = time.monotonic(), self.stats
        busy = max((now - t for t in list(self._busy_since.values())), default=0.0)
        if busy > self.live.stall_s:
            return f"a worker has been on one frame for {busy:.1f} s (engine stalled or too slow)"
        if self.cameraset is not None and self._input_since is not None and (
                why := self.cameraset.no_input(output, now, self._input_since,
                                               self.live.stall_s)):
            return why
        for out in self.outputs:
            if why := out.stall_reason(output):
                return why
        if now - st.last_error_at < 2 * self.live.stall_s + 1.0:
            return f"frames rejected or failing: {st.last_error}"
        return (f"no frame processed in the last {now - self.watchdog.last(output):.1f} s "
                "although images arrive")

    # attributes of the node this mixin reads (declared for type checkers)
    _last_diag: tuple[float, int, int]
    _seen: tuple[int, int, int]
    _input_since: float | None
    _busy_since: dict[str, float]
    fatal: str
    mailbox: Any
    workers: list[Any]
    watchdog: Any
    outputs: tuple[Any, ...]  # seg_ros.ros.outputs: the registry's outputs of this node
    engine: Any
    card: Any
    startup: Any
    image_sub: Any
    cameraset: Any
    depth: Any  # seg_ros.ros.depth_hook.DepthInput
    param_refusals: int
    last_param_error: str

    def serving(self) -> bool:  # pragma: no cover - the node defines it
        raise NotImplementedError

    def state_text(self) -> str:  # pragma: no cover - the node defines it
        raise NotImplementedError
