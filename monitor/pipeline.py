"""One camera's processing after detection: tracker -> event lifecycle -> behaviour decider ->
line crossings -> crowds -> snapshots -> sink, and the camera's retained state (counts, motion,
crossing counts).

``build_camera_pipeline`` wires one camera from config; the daemon and ``monitor eval`` both use
it, so what is evaluated is what runs.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from monitor.config import CameraConfig, Config
from monitor.events.crowd import CrowdWatcher
from monitor.events.lifecycle import EventLifecycle
from monitor.events.lines import CrossingKey, Line, LineCounter
from monitor.events.occupancy import Occupancy, StateSink
from monitor.events.reviews import ReviewTracker
from monitor.events.snapshot import SnapshotWriter
from monitor.events.zones import Zone
from monitor.observe.stats import PipelineStats
from monitor.temporal.checkpoint import Checkpoint
from monitor.temporal.deciders import BehaviourDecider, make_decider
from monitor.track.bytetrack import ByteTracker
from monitor.types import Alert, AlertType, Box, Detections, ReviewMessage, Tracks, TrackView


class Tracker(Protocol):
    def update(self, detections: Detections) -> Tracks: ...


class AlertSink(Protocol):
    def emit(self, alert: Alert) -> None: ...


class ReviewSink(Protocol):
    def emit_review(self, message: ReviewMessage) -> None: ...


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
        occupancy: the camera's counts and motion state (None: not published).
        reviews: groups the camera's events into review items, handed to ``review_sink``.
        crowds: the camera's crowd events (None: no zone has a crowd set).
        lines: the camera's line crossings and counts (None: no lines).
    """

    def __init__(
        self,
        tracker: Tracker,
        lifecycle: EventLifecycle,
        snapshots: SnapshotWriter,
        sink: AlertSink,
        decider: BehaviourDecider | None = None,
        occupancy: Occupancy | None = None,
        reviews: ReviewTracker | None = None,
        review_sink: ReviewSink | None = None,
        crowds: CrowdWatcher | None = None,
        lines: LineCounter | None = None,
    ) -> None:
        if (reviews is None) != (review_sink is None):
            raise ValueError("reviews and review_sink come together")
        self._tracker = tracker
        self._decider = decider
        self._occupancy = occupancy
        self._reviews = reviews
        self._review_sink = review_sink
        self._crowds = crowds
        self._lines = lines
        self.lifecycle = lifecycle
        self._snapshots = snapshots
        self._sink = sink
        self.detections = 0
        self.alerts = 0
        # The behaviour decider's time (the temporal model's, for decider "temporal").
        self.behaviour_s = 0.0
        self.behaviour_steps = 0
        self._lock = threading.Lock()
        self._closed = False
        self._without_snapshot: set[str] = set()  # open events whose snapshot write failed
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

    def stats(self) -> PipelineStats:
        # Without the lock: a pipeline blocked on a full store queue holds it, and the stats
        # must still be read (each counter is one attribute read; they may be a frame apart).
        return PipelineStats(self.detections, self.alerts, self.behaviour_s,
                             self.behaviour_steps)

    def crossing_counts(self) -> dict[CrossingKey, int]:
        """The camera's line crossings so far (empty: no lines)."""
        with self._lock:
            return {} if self._lines is None else self._lines.counts()

    def process_tracks(self, tracks: Tracks) -> None:
        """Run the stages after the tracker (``monitor eval`` tracks once, decides three ways)."""
        with self._lock:
            if not self._closed:
                self._process_tracks(tracks)

    def _process_tracks(self, tracks: Tracks) -> None:
        for track in tracks.items:
            self._last_seen[track.track_id] = (track.detection.box, tracks.frame.monotonic)
        frame = tracks.frame
        alerts = self.lifecycle.update(tracks)
        if self._decider is not None:
            alerts += self._decide(tracks)
        if self._lines is not None:
            alerts += self._lines.update(self.lifecycle.sightings(frame), frame.width,
                                         frame.height, self.lifecycle.track_ids())
        if self._crowds is not None:
            alerts += self._crowds.update(self.lifecycle.zone_stays())
        for alert in alerts:
            if alert.type is AlertType.START and not self._snapshots.write(frame, alert.event):
                self._without_snapshot.add(alert.event.id)
            self._emit(alert)
        if self._occupancy is not None:
            self._occupancy.update(self.lifecycle.present(), frame.monotonic, frame.motion,
                                   None if self._lines is None else self._lines.counts())
        if self._reviews is not None:
            self._emit_reviews(self._reviews.advance(frame.captured_at))

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
        started = time.perf_counter()
        verdicts = self._decider.step(seen, frame.width, frame.height)
        if seen:
            self.behaviour_s += time.perf_counter() - started
            self.behaviour_steps += 1
        self._decider.forget(followed, frame.monotonic)
        return self.lifecycle.apply_verdicts(verdicts)

    def expire(self, now_monotonic: float, now: datetime | None = None) -> None:
        """End events of tracks that went unseen even though no frame arrives (dead camera),
        and a review quiet since (``now``: the wall clock, UTC-aware)."""
        with self._lock:
            if self._closed:
                return
            alerts = self.lifecycle.expire(now_monotonic)
            if self._crowds is not None:
                alerts += self._crowds.update(self.lifecycle.zone_stays())
            for alert in alerts:
                self._emit(alert)
            if self._occupancy is not None:
                self._occupancy.update(self.lifecycle.present(), now_monotonic)
            if self._reviews is not None and now is not None:
                self._emit_reviews(self._reviews.advance(now))

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
                # A crowd ends before its members' stays do (at their newest sighting).
                ended = [] if self._crowds is None else self._crowds.close_all()
                for alert in ended + self.lifecycle.close_all():
                    self._emit(alert)
                if self._reviews is not None:
                    self._emit_reviews(self._reviews.close())
                if self._occupancy is not None:
                    self._occupancy.reset()
        finally:
            self._lock.release()
        return True

    def _emit(self, alert: Alert) -> None:
        if alert.event.id in self._without_snapshot:
            # The snapshot could not be written (a full disk): the stored event must not point
            # to a file that does not exist, in this alert or any later one of the event.
            alert = dataclasses.replace(alert, event=dataclasses.replace(alert.event, snapshot=None))
            if alert.type is AlertType.END:
                self._without_snapshot.discard(alert.event.id)
        if not alert.record_only:
            self.alerts += 1
        self._sink.emit(alert)
        if self._reviews is not None:
            self._emit_reviews(self._reviews.observe(alert))

    def _emit_reviews(self, messages: list[ReviewMessage]) -> None:
        assert self._review_sink is not None
        for message in messages:
            self._review_sink.emit_review(message)


def build_camera_pipeline(
    camera: CameraConfig,
    config: Config,
    sink: AlertSink,
    snapshots: SnapshotWriter,
    checkpoint: Checkpoint | None,
    *,
    tracker: Tracker | None = None,
    decider: str | None = None,
    state: StateSink | None = None,
    reviews: ReviewSink | None = None,
    with_snapshots: bool = True,
    crossings: Mapping[CrossingKey, int] | None = None,
) -> CameraPipeline:
    """One camera's pipeline from config.

    Args:
        camera: the camera's section.
        config: the whole config (events, tracker, temporal, motion sections).
        sink: receives the alerts.
        snapshots: writes START snapshots.
        checkpoint: the temporal model (decider ``temporal``), else None.
        tracker: share one tracker (``monitor eval`` compares deciders on the same tracks);
            default a new ByteTrack for the camera.
        decider: override ``[temporal] decider``.
        state: receives the camera's counts and motion state (None: none kept). It gets the
            empty state at once, replacing whatever a previous run left retained.
        reviews: receives the camera's review items (None, or ``[reviews] enabled`` false:
            none are kept).
        with_snapshots: events name a snapshot path (the daemon); ``monitor eval`` keeps none.
        crossings: the lines' counts to continue from (the store's; None: from 0).
    """
    zones = [Zone.from_config(z) for z in camera.zones]
    snapshot_path = snapshots.path_for if with_snapshots else _no_snapshot
    lifecycle = EventLifecycle(
        camera.name, camera.labels, zones, config.events, snapshot_path=snapshot_path
    )
    crowd_zones = {z.name: z.crowd for z in camera.zones if z.crowd is not None}
    crowds = None
    if crowd_zones:
        crowds = CrowdWatcher(camera.name, crowd_zones, config.events, snapshot_path=snapshot_path)
    lines = None
    if camera.lines:
        lines = LineCounter(camera.name, [Line.from_config(c) for c in camera.lines],
                            camera.labels, counted=crossings, snapshot_path=snapshot_path)
    temporal = config.temporal
    if decider is not None:
        temporal = temporal.model_copy(update={"decider": decider})
    keep_reviews = reviews is not None and config.reviews.enabled
    occupancy = None
    if state is not None:
        occupancy = Occupancy(
            camera.name, camera.labels, [z.name for z in camera.zones],
            config.motion.off_delay_s, state, motion_known=config.motion.enabled,
            crossings=None if lines is None else lines.counts(),
        )
        occupancy.reset()
    return CameraPipeline(
        tracker or ByteTracker(camera.name, config.tracker, camera.detect_fps),
        lifecycle,
        snapshots,
        sink,
        make_decider(temporal, checkpoint),
        occupancy,
        ReviewTracker(camera.name, config.reviews) if keep_reviews else None,
        reviews if keep_reviews else None,
        crowds,
        lines,
    )


def _no_snapshot(camera: str, event_id: str) -> str | None:
    return None
