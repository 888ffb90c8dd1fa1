"""The ``{prefix}/stats`` payload: the essentials of ``/metrics`` as one retained JSON message,
for subscribers without Prometheus (Home Assistant's diagnostic sensors read it)::

    {"instance": "nvr", "uptime_s": 3600.0, "interval_s": 15.0,
     "detector": {"inference_ms": 212.5, "frames_per_s": 6.1, "errors": 0},
     "store": {"queued": 0, "capacity": 10000, "unsent": 0},
     "alerts": {"published": 41, "delivered": 41, "failed": 0},
     "cameras": {"gate": {"status": "online", "camera_fps": 25.0, "detection_fps": 3.0,
                          "dropped_per_s": 0.0, "reconnects": 0, "stalls": 0,
                          "behaviour_ms": 1.2}}}

Rates are over the interval since the previous message (the first: since start);
``inference_ms`` is the mean detector call in that interval (null when there was none).
"""

from __future__ import annotations

import json
from typing import Any

from monitor.observe.stats import DaemonStats


def stats_topic(prefix: str) -> str:
    """Retained JSON of the daemon's essentials, every ``[metrics] stats_interval_s``."""
    return f"{prefix}/stats"


class StatsReport:
    """Builds each payload from the newest snapshot and the one before it.

    Args:
        instance: ``[daemon] instance``.
    """

    def __init__(self, instance: str) -> None:
        self._instance = instance
        self._previous: DaemonStats | None = None

    def payload(self, stats: DaemonStats, unsent: int | None) -> str:
        before = self._previous
        self._previous = stats
        interval_s = max(1e-6, stats.uptime_s - (before.uptime_s if before else 0.0))

        def rate(now: float, then: float) -> float:
            return round(max(0.0, now - then) / interval_s, 2)

        cameras: dict[str, Any] = {}
        for name, source in stats.sources.items():
            old = before.sources.get(name) if before else None
            regions, old_regions = stats.regions, before.regions if before else None
            inferred = (regions.whole.get(name, 0) + regions.regions.get(name, 0)
                        + regions.held.get(name, 0)) if regions else 0
            inferred_before = (old_regions.whole.get(name, 0) + old_regions.regions.get(name, 0)
                               + old_regions.held.get(name, 0)) if old_regions else 0
            pipeline = stats.pipelines.get(name)
            old_pipeline = before.pipelines.get(name) if before else None
            steps = (pipeline.behaviour_steps if pipeline else 0) - (
                old_pipeline.behaviour_steps if old_pipeline else 0)
            spent_s = (pipeline.behaviour_s if pipeline else 0.0) - (
                old_pipeline.behaviour_s if old_pipeline else 0.0)
            cameras[name] = {
                "status": stats.statuses.get(name, "offline"),
                "camera_fps": rate(source.frames_read, old.frames_read if old else 0),
                "detection_fps": rate(inferred, inferred_before),
                "dropped_per_s": rate(source.frames_dropped, old.frames_dropped if old else 0),
                "reconnects": source.reconnects,
                "stalls": source.stalls,
                "behaviour_ms": round(1000 * spent_s / steps, 2) if steps > 0 else None,
            }
        calls = sum(stats.regions.inputs.values()) if stats.regions else 0
        calls_before = sum(before.regions.inputs.values()) if before and before.regions else 0
        spent = (stats.regions.inference_s if stats.regions else 0.0) - (
            before.regions.inference_s if before and before.regions else 0.0)
        frames = stats.worker.frames_inferred if stats.worker else 0
        frames_before = before.worker.frames_inferred if before and before.worker else 0
        body = {
            "instance": self._instance,
            "uptime_s": round(stats.uptime_s, 1),
            "interval_s": round(interval_s, 1),
            "detector": {
                "inference_ms": round(1000 * spent / (calls - calls_before), 1)
                if calls > calls_before else None,
                "frames_per_s": rate(frames, frames_before),
                "errors": stats.worker.errors if stats.worker else 0,
            },
            "store": {
                "queued": stats.writer.queued if stats.writer else 0,
                "capacity": stats.writer.capacity if stats.writer else 0,
                "unsent": unsent,
            },
            "alerts": {
                "published": stats.outbox.published if stats.outbox else 0,
                "delivered": stats.outbox.delivered if stats.outbox else 0,
                "failed": stats.outbox.dropped if stats.outbox else 0,
            },
            "cameras": cameras,
        }
        return json.dumps(body, separators=(",", ":"))
