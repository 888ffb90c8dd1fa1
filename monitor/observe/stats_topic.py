"""The ``{prefix}/stats/{instance}`` payload: the essentials of ``/metrics`` as one retained
JSON message, for subscribers without Prometheus (Home Assistant's diagnostic sensors read it)::

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
import logging
import threading
from collections.abc import Callable
from typing import Any

from monitor.observe.stats import DaemonStats

log = logging.getLogger(__name__)


def stats_topic(prefix: str, instance: str) -> str:
    """Retained JSON of one daemon's essentials, every ``[metrics] stats_interval_s``: one topic
    per instance, as for availability (several daemons may share a broker)."""
    return f"{prefix}/stats/{instance}"


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


class StatsThread:
    """Every ``interval_s``: counts this instance's unsent alerts and publishes the stats.

    Its own thread, because counting is a store query, which a database that is away can hold
    for many seconds: neither the main loop (the watchdog) nor a metrics scrape may wait for
    it. Scrapes read the count this thread last made.

    Args:
        stats: the daemon's ``stats()``.
        count_unsent: the store query (None: unreadable now).
        publish: takes each payload (None: no ``{prefix}/stats/{instance}`` topic, counting only).
        report: builds the payloads.
        interval_s: the period.
    """

    def __init__(
        self, stats: Callable[[], DaemonStats], count_unsent: Callable[[], int | None],
        publish: Callable[[str], None] | None, report: StatsReport, interval_s: float,
    ) -> None:
        self._stats = stats
        self._count_unsent = count_unsent
        self._publish = publish
        self._report = report
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unsent: int | None = None  # the last count (one reference: read from any thread)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="monitor-stats", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.unsent = self._count_unsent()
                if self._publish is not None:
                    self._publish(self._report.payload(self._stats(), self.unsent))
            except Exception:  # noqa: BLE001 - stats must never end the daemon
                log.exception("stats not published")
