"""One camera's processing after detection: tracker -> event lifecycle -> snapshots -> sink."""

from __future__ import annotations

import threading
from typing import Protocol

from monitor.events.lifecycle import EventLifecycle
from monitor.events.snapshot import SnapshotWriter
from monitor.types import Alert, AlertType, Detections, Tracks


class Tracker(Protocol):
    def update(self, detections: Detections) -> Tracks: ...


class AlertSink(Protocol):
    def emit(self, alert: Alert) -> None: ...


class CameraPipeline:
    """Runs in the inference thread for each of its camera's detection results.

    ``close()`` may come from another thread (shutdown) while the inference thread is still busy:
    a lock keeps the lifecycle single-threaded, and a closed pipeline ignores late results, so
    no START can follow the END of shutdown.

    Args:
        tracker: this camera's tracker.
        lifecycle: this camera's event lifecycle.
        snapshots: writes the START snapshot (the frame the event was confirmed on).
        sink: receives every alert (the store and, through its outbox, MQTT).
    """

    def __init__(
        self,
        tracker: Tracker,
        lifecycle: EventLifecycle,
        snapshots: SnapshotWriter,
        sink: AlertSink,
    ) -> None:
        self._tracker = tracker
        self.lifecycle = lifecycle
        self._snapshots = snapshots
        self._sink = sink
        self.detections = 0
        self.alerts = 0
        self._lock = threading.Lock()
        self._closed = False

    def process(self, detections: Detections) -> None:
        with self._lock:
            if self._closed:
                return
            tracks = self._tracker.update(detections)
            self.detections += len(detections.items)
            for alert in self.lifecycle.update(tracks):
                if alert.type is AlertType.START:
                    self._snapshots.write(detections.frame, alert.event)
                self._emit(alert)

    def expire(self, now_monotonic: float) -> None:
        """End events of tracks that went unseen even though no frame arrives (dead camera)."""
        with self._lock:
            if self._closed:
                return
            for alert in self.lifecycle.expire(now_monotonic):
                self._emit(alert)

    def close(self, timeout_s: float = -1) -> bool:
        """End every open event (shutdown); later results are ignored.

        Args:
            timeout_s: longest wait for a result being processed right now (-1: no limit).

        Returns:
            False when the pipeline stayed busy for ``timeout_s`` and nothing was ended.
        """
        if not self._lock.acquire(timeout=timeout_s):
            return False
        try:
            if not self._closed:
                self._closed = True
                for alert in self.lifecycle.close_all():
                    self._emit(alert)
        finally:
            self._lock.release()
        return True

    def _emit(self, alert: Alert) -> None:
        self.alerts += 1
        self._sink.emit(alert)
