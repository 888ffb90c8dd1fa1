"""The clip-writer thread: one per daemon, it encodes each event's clip once its post-roll has
been filmed and hands the written file on to be recorded with the event.

The pipeline only tells it about alerts (``observe``: a dict update under a short lock, never a
wait); the frames come from each camera's ``FrameRing``, fed by the capture threads. What may
wait is bounded by ``[clips] queue_size`` windows: a new event beyond it gets no clip, with a
warning and ``monitor_clips_dropped_total``.

At stop every pending clip is written with the footage there is, each ending at the stop at the
latest: events the shutdown ended (``end_reason`` shutdown) get a clip up to the stop, with no
post-roll. Those not written within the stop's time budget are dropped (and counted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from monitor.clips.buffer import ClipSampler, FrameRing
from monitor.clips.encode import ClipEncodeError, EncodedClip, encode_clip
from monitor.clips.schedule import ClipSchedule, ClipWindow
from monitor.config import CameraConfig, ClipsConfig
from monitor.types import Alert, Event

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5  # longest sleep between looks at the schedule (a clock step is noticed)


@dataclass(frozen=True, slots=True)
class WrittenClip:
    """A clip on disk and the event it is of (as last heard of)."""

    event: Event
    clip: EncodedClip


@dataclass(frozen=True, slots=True)
class ClipStats:
    """Counters since start.

    Attributes:
        written: clips written.
        failed: clips that could not be made (no footage, encoder or disk error).
        dropped: clips given up: no room in the queue, or not done by the end of a stop.
        bytes_written: size of the clips written.
        pending: events whose clips are still to be written.
        buffered_bytes: camera -> JPEG bytes its frame ring holds now.
        evicted_frames: camera -> frames its ring dropped, while still wanted, to stay within
            ``memory_limit_mb``.
    """

    written: int
    failed: int
    dropped: int
    bytes_written: int
    pending: int
    buffered_bytes: dict[str, int]
    evicted_frames: dict[str, int]


def ring_keep_s(config: ClipsConfig, confirm_frames: int, camera: CameraConfig) -> float:
    """How much footage a camera's ring keeps with no event open: the pre-roll, plus the
    longest a START can come after its event's start on this camera (the confirmation's
    ``confirm_frames`` at ``detect_fps``; a crowd's ``for_s``), so the pre-roll is there when
    the START arrives. Never more than ``max_length_s``: no clip is longer."""
    crowd_s = max((zone.crowd.for_s for zone in camera.zones if zone.crowd is not None),
                  default=0.0)
    lag_s = max(confirm_frames / camera.detect_fps, crowd_s)
    return min(config.max_length_s, config.pre_roll_s + lag_s)


class _AlertSink(Protocol):
    def emit(self, alert: Alert) -> None: ...


class ClipObserver:
    """A camera pipeline's sink that passes every alert on, then lets the clip writer follow
    it (after: the clip never delays the alert)."""

    def __init__(self, sink: _AlertSink, clips: ClipWriter) -> None:
        self._sink = sink
        self._clips = clips

    def emit(self, alert: Alert) -> None:
        self._sink.emit(alert)
        self._clips.observe(alert)


def clip_path(root: Path, event: Event) -> Path:
    """``{root}/{camera}/{YYYY-MM-DD}/{event id}.mp4``, dated by the event's start (UTC)."""
    return root / event.camera / event.start_time.strftime("%Y-%m-%d") / f"{event.id}.mp4"


class ClipWriter:
    """Owns every camera's frame ring and the thread that turns events into clips.

    Args:
        config: the ``[clips]`` section.
        root: the clips folder (``Config.clips_dir()``).
        on_written: called on the clip thread with each clip written (the daemon records its
            path with the event); may block, it holds up only later clips.
        on_encoded: called with each clip's encoding time in seconds (the metrics histogram).
        now: the wall clock (UTC-aware), on which frames and events are timed.
        on_start: called first thing on the clip thread (the daemon lowers its priority).

    Example:
        >>> clips = ClipWriter(config.clips, config.clips_dir(), record)
        >>> sampler = clips.add_camera("gate", keep_s=6.0)  # the capture thread feeds it
        >>> clips.start()
        >>> clips.observe(alert)  # every alert of the camera's pipeline
        >>> clips.stop(timeout_s=1.0)
    """

    def __init__(
        self, config: ClipsConfig, root: Path, on_written: Callable[[WrittenClip], None], *,
        on_encoded: Callable[[float], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_start: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._root = root
        self._on_written = on_written
        self._on_encoded = on_encoded
        self._now = now
        self._on_start = on_start
        self._schedule = ClipSchedule(config.pre_roll_s, config.post_roll_s,
                                      config.max_length_s, config.queue_size)
        self._rings: dict[str, FrameRing] = {}
        # Cameras a reload removed: each ring goes once its last pending clip is written.
        self._retired: set[str] = set()
        # Guards the schedule, the rings dict and the counters; never held while encoding.
        self._cond = threading.Condition()
        self._stopping = False
        self._stop_deadline = 0.0
        self._written = self._failed = self._dropped = self._bytes = 0
        self._thread: threading.Thread | None = None

    def add_camera(self, camera: str, keep_s: float) -> ClipSampler:
        """A ring for ``camera`` (replacing one of that name) and the sampler that feeds it.

        Args:
            keep_s: seconds of footage kept with no event open (see ``FrameRing``).
        """
        config = self._config
        ring = FrameRing(keep_s, round(config.memory_limit_mb * 1_000_000))
        with self._cond:
            self._rings[camera] = ring
            self._retired.discard(camera)
        return ClipSampler(ring, config.fps, config.max_width_px, config.jpeg_quality)

    def retire_camera(self, camera: str) -> None:
        """The camera was removed: its ring (memory, and its metrics) goes as soon as the clips
        of its events still pending are written, from the footage it has."""
        with self._cond:
            self._retired.add(camera)
            self._drop_retired_rings()

    def _drop_retired_rings(self) -> None:
        """With ``_cond`` held."""
        for camera in [c for c in self._retired if not self._schedule.pending_for(c)]:
            self._rings.pop(camera, None)
            self._retired.discard(camera)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("ClipWriter.start() called twice")
        # daemon: an encode still running when stop() gave up must not hold up the exit.
        self._thread = threading.Thread(target=self._run, name="monitor-clips", daemon=True)
        self._thread.start()

    def observe(self, alert: Alert) -> None:
        """Follow one alert of a camera pipeline (its thread); never blocks beyond a short lock."""
        with self._cond:
            if self._stopping:
                return
            ring = self._rings.get(alert.event.camera)
            if ring is None:
                return
            if not self._schedule.opens(alert):
                self._schedule.update(alert.event)
            elif (window := self._schedule.open(alert.event)) is not None:
                ring.hold(alert.event.id, window.start)
            else:
                self._dropped += 1
                log.warning("clip of event %s dropped: %d clips already waiting ([clips] "
                            "queue_size)", alert.event.id, self._config.queue_size)
            if alert.event.end_time is not None:
                self._cond.notify_all()  # its due time may be sooner than the thread's sleep

    def stop(self, timeout_s: float) -> bool:
        """Write every pending clip with the footage there is, within ``timeout_s``.

        Returns:
            True when the thread finished in time.
        """
        with self._cond:
            self._stopping = True
            self._stop_deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("clip writer still encoding after %.1f s; leaving it", timeout_s)
            return False
        return True

    def stats(self) -> ClipStats:
        with self._cond:
            rings = {name: ring.stats() for name, ring in self._rings.items()}
            return ClipStats(
                self._written, self._failed, self._dropped, self._bytes, len(self._schedule),
                {name: s.bytes for name, s in rings.items()},
                {name: s.evicted_for_memory for name, s in rings.items()},
            )

    def _run(self) -> None:
        if self._on_start is not None:
            self._on_start()
        while True:
            with self._cond:
                if self._stopping:
                    break
                due = self._schedule.due(self._now())
                if not due:
                    self._cond.wait(self._sleep_s())
                    continue
            for window in due:
                self._write(window)
        self._write_the_rest()

    def _sleep_s(self) -> float:
        next_due = self._schedule.next_due()
        if next_due is None:
            return _IDLE_WAIT_S
        return max(0.01, min(_IDLE_WAIT_S, (next_due - self._now()).total_seconds()))

    def _write_the_rest(self) -> None:
        with self._cond:
            windows = self._schedule.take_all(self._now())
        for index, window in enumerate(windows):
            if time.monotonic() >= self._stop_deadline:
                left = windows[index:]
                with self._cond:
                    self._dropped += len(left)
                log.warning("%d clip(s) not written: the stop's time ran out", len(left))
                for skipped in left:
                    self._release(skipped)
                return
            self._write(window)

    def _release(self, window: ClipWindow) -> None:
        with self._cond:
            ring = self._rings.get(window.event.camera)
            # The window has left the schedule: a removed camera's ring may go now.
            self._drop_retired_rings()
        if ring is not None:
            ring.release(window.event.id)

    def _write(self, window: ClipWindow) -> None:
        event = window.event
        with self._cond:
            ring = self._rings.get(event.camera)
        # Read before the hold goes: once released, the capture thread's next append may drop
        # every frame older than the ring's keep_s, the start of this clip with them.
        frames = ring.between(window.start, window.end) if ring is not None else ()
        self._release(window)
        if ring is None:
            log.info("no clip for event %s: camera %s was removed", event.id, event.camera)
            return
        started = time.perf_counter()
        try:
            clip = encode_clip(frames, clip_path(self._root, event), self._config.fps,
                               window.end, self._config.crf)
        except ClipEncodeError as exc:
            with self._cond:
                self._failed += 1
            log.warning("no clip for event %s: %s", event.id, exc)
            return
        seconds = time.perf_counter() - started
        with self._cond:
            self._written += 1
            self._bytes += clip.size_bytes
        log.debug("clip of event %s: %d frames, %.1f s, %d bytes in %.2f s", event.id,
                  clip.frames, clip.duration_s, clip.size_bytes, seconds)
        if self._on_encoded is not None:
            self._on_encoded(seconds)
        try:
            self._on_written(WrittenClip(event, clip))
        except Exception:  # noqa: BLE001 - one clip's record must not end the thread
            log.exception("clip %s written but not recorded with event %s", clip.path, event.id)
