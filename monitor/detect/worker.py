"""The inference worker: one thread owns the detector and serves every camera.

It takes the newest pending frame of each camera (capture threads offer only frames due for
detection), runs them through the detector as one round, and routes each result back to its
camera.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.types import Detections, Frame

log = logging.getLogger(__name__)


class Detector(Protocol):
    def detect(self, frames: Sequence[Frame]) -> list[Detections]: ...


class FrameSlot(Protocol):
    def take(self) -> Frame | None: ...


@dataclass(frozen=True, slots=True)
class WorkerStats:
    batches: int
    frames_inferred: int
    errors: int
    last_batch_ms: float
    detect_s: float = 0.0  # in the detector's calls
    route_s: float = 0.0  # handing results on: tracking, events, the temporal model


class InferenceWorker:
    """Feeds frames from every camera's newest-frame slot to one detector.

    Args:
        detector: the model wrapper; only this worker's thread calls it.
        slots: camera name -> its newest-frame slot.
        on_detections: called (in this thread) with each frame's detections.
        on_tick: called (in this thread) about every ``tick_interval_s`` so cameras that send no
            frames still age their tracks out.
        wake: set by the slots when a frame arrives.
        max_batch: most frames in one detector call.
        tick_interval_s: period of ``on_tick``.
        error_backoff_s: pause after a detector failure, so a broken model does not spin a core.
    """

    def __init__(
        self,
        detector: Detector,
        slots: Mapping[str, FrameSlot],
        on_detections: Callable[[Detections], None],
        on_tick: Callable[[], None],
        wake: threading.Event,
        *,
        max_batch: int = 8,
        tick_interval_s: float = 0.5,
        error_backoff_s: float = 1.0,
    ) -> None:
        self._detector = detector
        self._slots = dict(slots)
        self._on_detections = on_detections
        self._on_tick = on_tick
        self._wake = wake
        self._max_batch = max_batch
        self._tick_interval_s = tick_interval_s
        self._error_backoff_s = error_backoff_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="detector", daemon=True)
        self._batches = self._frames = self._errors = 0
        self._last_batch_ms = 0.0
        self._detect_s = self._route_s = 0.0
        self._heartbeat = time.monotonic()
        self._scan_start = 0

    def start(self) -> None:
        self._thread.start()

    def set_slots(self, slots: Mapping[str, FrameSlot]) -> None:
        """Watch these cameras from the next scan on (a config reload added or removed some).
        The dict is replaced whole: the loop keeps the one it is scanning."""
        self._slots = dict(slots)

    def stop(self, timeout_s: float) -> bool:
        """Ask the thread to end after its current batch; True when it has ended."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def seconds_since_progress(self) -> float:
        """Seconds since the loop last came round: large when a detector call or a hand-off
        (e.g. a full store queue) is stuck, which the daemon's watchdog reports."""
        return time.monotonic() - self._heartbeat

    def stats(self) -> WorkerStats:
        return WorkerStats(self._batches, self._frames, self._errors, self._last_batch_ms,
                           self._detect_s, self._route_s)

    def _pending_frames(self) -> list[Frame]:
        """Take the newest frame of up to ``max_batch`` cameras that have one."""
        frames: list[Frame] = []
        slots = self._slots  # one scan sees one set of cameras, even if a reload replaces it
        names = list(slots)
        # Start each scan one camera further on: when the detector cannot keep up and batches
        # are full, the first cameras in config order must not take every place in them.
        start = self._scan_start % len(names) if names else 0
        self._scan_start += 1
        for name in names[start:] + names[:start]:
            if len(frames) >= self._max_batch:
                break
            frame = slots[name].take()
            if frame is not None:
                frames.append(frame)
        return frames

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            self._heartbeat = now
            if now >= next_tick:
                self._guarded(self._on_tick)
                next_tick = now + self._tick_interval_s
            # Clear before taking: a frame put after the scan sets it again and is not slept on.
            self._wake.clear()
            frames = self._pending_frames()
            if not frames:
                self._wake.wait(max(0.0, next_tick - now))
                continue
            started = time.monotonic()
            try:
                results = self._detector.detect(frames)
            except Exception:
                self._errors += 1
                log.exception("detector failed on a batch of %d frames; retrying", len(frames))
                self._stop.wait(self._error_backoff_s)
                continue
            detected = time.monotonic()
            self._last_batch_ms = (detected - started) * 1000.0
            self._detect_s += detected - started
            self._batches += 1
            self._frames += len(frames)
            for result in results:
                if self._stop.is_set():
                    break  # shutdown has begun: the rest of this batch is not wanted
                self._guarded(self._on_detections, result)
            self._route_s += time.monotonic() - detected

    def _guarded(self, func: Callable[..., None], *args: object) -> None:
        # One camera's bad frame must not stop detection for every camera.
        try:
            func(*args)
        except Exception:
            self._errors += 1
            log.exception("processing failed in %s", getattr(func, "__qualname__", func))
