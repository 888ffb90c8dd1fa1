"""Each camera's recent footage for clips: frames sampled at the clip rate, scaled down and kept
as JPEG in a ring bounded by time and by bytes.

The capture thread feeds ``ClipSampler.offer`` with every frame it decodes (the only place that
sees the camera's full rate: the detector sees ``detect_fps`` frames at most, and drops some when
busy). Most frames return at once; one per clip frame interval is scaled and JPEG-encoded there
(about 2 ms at 640 px), on the camera's own thread rather than the shared inference thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClipFrame:
    """One buffered picture.

    Attributes:
        jpeg: the JPEG bytes (BGR picture, even width and height).
        captured_at: wall-clock UTC time the frame was read: events' times are on this clock.
        monotonic: ``time.monotonic()`` at read: the ring's age limit, immune to clock steps.
    """

    jpeg: bytes
    captured_at: datetime
    monotonic: float


@dataclass(frozen=True, slots=True)
class RingStats:
    """One camera's buffer now, and what it had to give up."""

    frames: int
    bytes: int
    evicted_for_memory: int  # frames dropped to stay within max_bytes while still wanted


class FrameRing:
    """Recent frames of one camera, oldest first; thread-safe.

    A frame is kept while it is younger than ``keep_s`` or not older than the oldest hold (an
    event whose clip is still to be written), and in every case only while the ring holds at
    most ``max_bytes``: over it the oldest frames go first, whatever holds them.

    Args:
        keep_s: seconds of footage kept with no hold (the pre-roll, plus the longest a START can
            come after its event's start).
        max_bytes: the memory bound of the JPEG bytes held.
    """

    def __init__(self, keep_s: float, max_bytes: int) -> None:
        if keep_s < 0:
            raise ValueError(f"keep_s must be >= 0, got {keep_s}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self._keep_s = keep_s
        self._max_bytes = max_bytes
        self._frames: deque[ClipFrame] = deque()
        self._bytes = 0
        self._evicted = 0
        self._holds: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def append(self, frame: ClipFrame) -> None:
        """Add the newest frame and drop what is no longer wanted."""
        with self._lock:
            self._frames.append(frame)
            self._bytes += len(frame.jpeg)
            oldest_held = min(self._holds.values(), default=None)
            while self._frames:
                first = self._frames[0]
                if self._bytes > self._max_bytes and len(self._frames) > 1:
                    wanted = (frame.monotonic - first.monotonic <= self._keep_s
                              or (oldest_held is not None and first.captured_at >= oldest_held))
                    self._evicted += wanted
                elif frame.monotonic - first.monotonic <= self._keep_s:
                    break
                elif oldest_held is not None and first.captured_at >= oldest_held:
                    break
                self._frames.popleft()
                self._bytes -= len(first.jpeg)

    def hold(self, key: str, since: datetime) -> None:
        """Keep frames captured at or after ``since`` until ``release(key)``."""
        with self._lock:
            self._holds[key] = since

    def release(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)

    def between(self, start: datetime, end: datetime) -> tuple[ClipFrame, ...]:
        """The frames captured in ``[start, end]``, oldest first."""
        with self._lock:
            return tuple(f for f in self._frames if start <= f.captured_at <= end)

    def stats(self) -> RingStats:
        with self._lock:
            return RingStats(len(self._frames), self._bytes, self._evicted)


def clip_size(width: int, height: int, max_width_px: int) -> tuple[int, int]:
    """The clip's frame size: at most ``max_width_px`` wide, aspect kept, both sides even
    (H.264 in yuv420p halves the colour planes, so odd sizes cannot be encoded)."""
    if width > max_width_px:
        height = round(height * max_width_px / width)
        width = max_width_px
    return max(2, width - width % 2), max(2, height - height % 2)


class ClipSampler:
    """Takes one frame per ``1 / fps`` seconds from a capture thread into a ``FrameRing``.

    Args:
        ring: where the sampled frames go.
        fps: the clip frame rate; a camera slower than it gives every frame.
        max_width_px: frames are scaled down to this width.
        jpeg_quality: 10..100.
    """

    def __init__(self, ring: FrameRing, fps: float, max_width_px: int, jpeg_quality: int) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.ring = ring
        self._interval_s = 1.0 / fps
        # A frame this early still counts as on time (read jitter), as the detector's cadence.
        self._slack_s = self._interval_s * 0.2
        self._next_due: float | None = None
        self._max_width_px = max_width_px
        self._quality = jpeg_quality
        self._failed = False

    def offer(self, image: np.ndarray, monotonic: float, captured_at: datetime) -> None:
        """One decoded frame (BGR uint8, H x W x 3); kept only when a clip frame is due.

        Never raises: a frame that cannot be encoded is skipped (one warning), so a clip
        problem can never take the camera's capture down.
        """
        if self._next_due is not None and monotonic + self._slack_s < self._next_due:
            return
        previous = self._next_due if self._next_due is not None else monotonic
        # After a gap the schedule restarts instead of declaring a burst of frames due.
        self._next_due = max(previous + self._interval_s,
                             monotonic + self._interval_s - self._slack_s)
        try:
            jpeg = self._encode(image)
        except (cv2.error, ValueError) as exc:
            if not self._failed:
                log.warning("clip frame not buffered: %s", exc)
            self._failed = True
            return
        self._failed = False
        self.ring.append(ClipFrame(jpeg, captured_at, monotonic))

    def _encode(self, image: np.ndarray) -> bytes:
        height, width = int(image.shape[0]), int(image.shape[1])
        size = clip_size(width, height, self._max_width_px)
        if size != (width, height):
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return bytes(data.tobytes())
