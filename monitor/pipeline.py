"""One camera's processing after detection: tracker -> event lifecycle -> behaviour decider ->
snapshots -> sink."""

from __future__ import annotations

import dataclasses
import threading
from typing import Protocol

from monitor.events.lifecycle import EventLifecycle
from monitor.events.snapshot import SnapshotWriter
from monitor.temporal.deciders import BehaviourDecider
from monitor.types import Alert, AlertType, Box, Detections, Tracks, TrackView


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
        decider: turns the tracks seen in each frame into fall/running events (None: off).
    """

    def __init__(
        self,
        tracker: Tracker,
        lifecycle: EventLifecycle,
        snapshots: SnapshotWriter,
        sink: AlertSink,
        decider: BehaviourDecider | None = None,
    ) -> None:
        self._tracker = tracker
        self._decider = decider
        self.lifecycle = lifecycle
        self._snapshots = snapshots
        self._sink = sink
        self.detections = 0
        self.alerts = 0
        self._lock = threading.Lock()
        self._closed = False
        # track id -> (its last box, monotonic time seen): where the detector must look again
        # even if nothing moves there.
        self._last_seen: dict[int, tuple[Box, float]] = {}

    def process(self, detections: Detections) -> None:
        with self._lock:
            if self._closed:
                return
            tracks = self._tracker.update(detections)
            if detections.held:
                tracks = dataclasses.replace(tracks, held=True)
            self.detections += len(detections.items)
            self._process_tracks(tracks)

    def recent_tracks(self, now_monotonic: float, within_s: float) -> tuple[Box, ...]:
        """Last boxes of the tracks seen within ``within_s`` before ``now_monotonic``: where the detector
        must look again even if nothing moves there."""
        with self._lock:
            for track_id, (_, seen) in list(self._last_seen.items()):
                if now_monotonic - seen > within_s:
                    del self._last_seen[track_id]
            return tuple(box for box, _ in self._last_seen.values())

    def process_tracks(self, tracks: Tracks) -> None:
        """Run the stages after the tracker (``monitor eval`` tracks once, decides three ways)."""
        with self._lock:
            if not self._closed:
                self._process_tracks(tracks)

    def _process_tracks(self, tracks: Tracks) -> None:
        for track in tracks.items:
            self._last_seen[track.track_id] = (track.detection.box, tracks.frame.monotonic)
        alerts = self.lifecycle.update(tracks)
        if self._decider is not None:
            alerts += self._decide(tracks)
        for alert in alerts:
            if alert.type is AlertType.START:
                self._snapshots.write(tracks.frame, alert.event)
            self._emit(alert)

    def _decide(self, tracks: Tracks) -> list[Alert]:
        assert self._decider is not None
        followed = self.lifecycle.track_ids()
        # Only confirmed tracks: a verdict on a track that is not an event yet would be decided
        # (and spent) before the lifecycle could start anything from it.
        seen = [
            TrackView(t.track_id, self.lifecycle.history(t.track_id))
            for t in tracks.items
            if self.lifecycle.is_confirmed(t.track_id)
        ]
        frame = tracks.frame
        verdicts = self._decider.step(seen, frame.width, frame.height)
        self._decider.forget(followed, frame.monotonic)
        return self.lifecycle.apply_verdicts(verdicts)

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
