"""One capture thread per camera: open, read, reconnect with backoff, hand frames to a slot.

The thread never dies of a camera problem. Failure to open, a failed read or a stall releases the
capture and reopens it after an exponential backoff; each failure is one warning line with the
URL's password masked. A stall is wall-clock time: ``stall_timeout_s`` without a delivered frame,
however the reads in between ended (succeeded with an unusable picture, or returned too slowly).
Local files stand in for cameras: they are paced to their own frame rate and, if the camera says
so, looped.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from monitor.config import CameraConfig, MotionConfig, SourceConfig
from monitor.redact import redact, redact_url
from monitor.ingest.latest import LatestFrame
from monitor.ingest.motion import MotionDetector, combine
from monitor.types import Frame, Motion

log = logging.getLogger(__name__)

SourceState = Literal["connecting", "streaming", "backoff", "ended", "stopped"]

CAPTURE_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
# TCP: RTP over UDP loses packets on busy links and the decoder then emits smeared frames.
# A short probe cuts the open of an RTSP stream from ~3 s to ~0.1-0.8 s.
RTSP_CAPTURE_OPTIONS = "rtsp_transport;tcp|analyzeduration;100000|probesize;32768"
# Used when a file does not declare a usable frame rate.
_FALLBACK_FILE_FPS = 25.0
_MAX_FILE_FPS = 240.0


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` a source uses; tests hand in fakes."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name

    def read(self) -> tuple[bool, Any]: ...

    def get(self, propId: int) -> float: ...  # noqa: N803 - OpenCV's name

    def release(self) -> None: ...


CaptureFactory = Callable[[str, SourceConfig], Capture]


class FrameTap(Protocol):
    """Sees every decoded frame on the capture thread (the clip buffer); must return quickly
    and never raise."""

    def offer(self, image: np.ndarray, monotonic: float, captured_at: datetime) -> None: ...


def open_capture(url: str, source: SourceConfig) -> Capture:
    """Open ``url`` with OpenCV's FFmpeg backend, open and read bounded by ``source``.

    The timeouts only take effect when given at construction; ``cap.set()`` later is ignored.
    """
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(source.open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(source.read_timeout_s * 1000),
    ]
    capture: Capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
    return capture


def ensure_rtsp_capture_options() -> None:
    """Put the RTSP capture options into the environment unless the user set their own.

    OpenCV reads this variable at every FFmpeg open, so it is process-wide and applies to files
    too. That is acceptable: this package is the daemon's only FFmpeg reader, demuxers ignore
    options they do not know (``rtsp_transport``), and the short probe only bounds how much
    of a stream FFmpeg reads to learn its format, which a local file states in its header. A user
    who needs other options sets the variable before start and it is left alone.
    """
    os.environ.setdefault(CAPTURE_OPTIONS_ENV, RTSP_CAPTURE_OPTIONS)


def is_local_file(url: str) -> bool:
    """True for a plain path or a ``file://`` URL: a recorded stand-in for a camera."""
    return "://" not in url or url.lower().startswith("file://")


def unusable_reason(image: Any) -> str | None:
    """Why a picture from a successful read cannot be a `Frame`; None if it can.

    A `Frame` holds a BGR uint8 array of shape (H, W, 3) with H, W >= 1. Anything else (None, an
    empty array, a grey or 4-channel picture, another dtype) is what a broken decoder or stream
    hands out, and is not delivered.
    """
    if image is None:
        return "no picture"
    shape = getattr(image, "shape", None)
    if shape is None:
        return f"not an array ({type(image).__name__})"
    if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
        return f"shape {tuple(shape)}, expected (H, W, 3)"
    if getattr(image, "dtype", None) != np.uint8:
        return f"dtype {image.dtype}, expected uint8"
    return None


@dataclass(frozen=True, slots=True)
class SourceStats:
    """A snapshot of one source.

    Attributes:
        frames_read: frames decoded (and looked at for motion) since start.
        frames_offered: of those, frames due for detection (``detect_fps``), put into the slot.
        frames_dropped: of those, frames replaced in the slot before the consumer took them.
        reconnects: times frames resumed after a failure (open, read or stall).
        state: what the capture thread is doing now.
        last_frame_age_s: seconds since the newest frame was read; None before the first frame.
        stalls: times the stream was reopened because no frame came for ``stall_timeout_s``.
    """

    frames_read: int
    frames_offered: int
    frames_dropped: int
    reconnects: int
    state: SourceState
    last_frame_age_s: float | None
    stalls: int = 0


class _Lost(Exception):
    """The stream failed; ``str()`` is the one-line reason."""


class _Stalled(_Lost):
    """No frame for ``stall_timeout_s`` (counted apart: a stall is a camera or network that
    hangs, where other failures refuse)."""


class _End(enum.Enum):
    STOP = "stop"
    EOF = "eof"
    REWIND = "rewind"


class _Pacer:
    """Spaces frames ``1/fps`` apart in real time, as a camera would deliver them."""

    def __init__(self, fps: float) -> None:
        self._period_s = 1.0 / fps
        self._due: float | None = None

    def wait_s(self, now: float) -> float:
        """Seconds to wait after a frame read at ``now`` (monotonic)."""
        if self._due is None or now - self._due > self._period_s:
            self._due = now  # fell behind (or first frame): restart the schedule, never burst
        self._due += self._period_s
        return max(0.0, self._due - now)


class _Cadence:
    """Which frames are due for detection: at most ``detect_fps`` a second, evenly spaced.

    Due times advance by the interval, not from the last due frame, so a 10 fps camera at
    ``detect_fps = 5`` gives every second frame despite read jitter; after a pause the schedule
    restarts instead of declaring a burst of frames due.
    """

    def __init__(self, detect_fps: float) -> None:
        self._interval_s = 1.0 / detect_fps
        # A frame this early still counts as on time (read jitter is a small part of a period).
        self._slack_s = self._interval_s * 0.2
        self._next_due: float | None = None

    def due(self, now: float) -> bool:
        if self._next_due is not None and now + self._slack_s < self._next_due:
            return False
        previous = self._next_due if self._next_due is not None else now
        self._next_due = max(previous + self._interval_s, now + self._interval_s - self._slack_s)
        return True


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread ``nice`` steps nicer (Linux: per thread), where the OS allows."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        thread_id = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread_id, os.getpriority(os.PRIO_PROCESS, thread_id) + nice)
    except OSError as exc:  # a container that forbids it: run at normal priority
        log.debug("capture thread priority unchanged: %s", exc)


class CameraSource:
    """Reads one camera on its own thread; each frame due for detection goes to a ``LatestFrame``
    slot, carrying what moved since the previous one.

    Every frame read is looked at by the motion detector (cheap, on a small grey copy); only
    ``detect_fps`` frames a second are offered to the inference worker.

    Args:
        camera: the camera; ``url`` may carry credentials, which are never logged.
        source: open/read/stall timeouts and the reconnect backoff.
        slot: where frames go; the consumer takes the newest one.
        motion: the ``[motion]`` section; None or disabled: frames carry no motion (inferred whole).
        frame_tap: also gets every frame read, detection on or off (the clip buffer samples it).
        open_capture: opens a capture; tests pass a fake, the daemon keeps the default.

    Example:
        >>> source = CameraSource(camera, config.source, LatestFrame())
        >>> source.start()
        >>> source.stop(timeout_s=2.0)
    """

    def __init__(
        self,
        camera: CameraConfig,
        source: SourceConfig,
        slot: LatestFrame,
        *,
        motion: MotionConfig | None = None,
        frame_tap: FrameTap | None = None,
        open_capture: CaptureFactory = open_capture,
    ) -> None:
        self._camera = camera
        self._tap = frame_tap
        self._motion = MotionDetector(motion) if motion is not None and motion.enabled else None
        self._cadence = _Cadence(camera.detect_fps)
        self._motion_since: Motion | None = None  # since the last frame offered
        self._nothing_since = True  # no frame read since the last one offered
        self._frames_offered = 0
        self._source = source
        self._slot = slot
        self._open_capture = open_capture
        self._is_file = is_local_file(camera.url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state: SourceState = "stopped"
        self._frames_read = 0
        self._reconnects = 0
        self._stalls = 0
        # Detection switched off over MQTT: frames are still read (status, motion), none is
        # offered, so none is counted as dropped either.
        self._detection_paused = False
        self._last_frame_at: float | None = None
        self._failed_since_frame = False
        self._delay_s = source.reconnect_initial_s

    @property
    def name(self) -> str:
        return self._camera.name

    def start(self) -> None:
        """Start the capture thread. A source starts once; build a new one to start again."""
        if self._thread is not None:
            raise RuntimeError(f"camera {self.name}: source already started")
        if self._camera.url.lower().startswith(("rtsp://", "rtsps://")):
            ensure_rtsp_capture_options()  # here, before any thread of ours calls FFmpeg
        self._set_state("connecting")
        self._thread = threading.Thread(target=self._run, name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Tell the thread to finish without waiting (the daemon tells every camera at once)."""
        self._stop.set()

    def stop(self, timeout_s: float) -> bool:
        """Ask the thread to finish and wait for it at most ``timeout_s`` seconds.

        Returns:
            True if the thread has ended. False if it is still inside a blocking open or read:
            it then exits as soon as that call returns (bounded by the open/read timeouts) and,
            being a daemon thread, never holds up the process exit.
        """
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("camera %s: capture thread still inside a blocking open/read after %.1f s; "
                        "it exits when that call returns", self.name, timeout_s)
            return False
        return True

    def pause_detection(self, paused: bool) -> None:
        """Stop (or resume) offering frames for detection; the stream stays open."""
        self._detection_paused = paused

    def is_alive(self) -> bool:
        """True while the capture thread runs: started and neither stopped nor at end of file."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stats(self) -> SourceStats:
        """A snapshot of the counters and state; cheap, safe from any thread."""
        dropped = self._slot.dropped
        with self._lock:
            age = None if self._last_frame_at is None else time.monotonic() - self._last_frame_at
            return SourceStats(self._frames_read, self._frames_offered, dropped,
                               self._reconnects, self._state, age, self._stalls)

    def _set_state(self, state: SourceState) -> None:
        with self._lock:
            self._state = state

    def _run(self) -> None:
        lower_thread_priority(self._source.capture_nice)
        try:
            while not self._stop.is_set():
                try:
                    end = self._stream_once()
                except Exception as exc:  # noqa: BLE001 - a camera problem must not end the thread
                    self._back_off(exc)
                    continue
                if end is _End.EOF:
                    self._set_state("ended")
                    log.info("camera %s: end of file %s", self.name, redact_url(self._camera.url))
                    return
        finally:
            with self._lock:
                if self._state != "ended":
                    self._state = "stopped"

    def _back_off(self, exc: Exception) -> None:
        if self._stop.is_set():
            return  # failures while stopping are expected (a blocked read was cut short)
        reason = str(exc) if isinstance(exc, _Lost) else f"unexpected {type(exc).__name__}: {exc}"
        delay_s = self._delay_s
        self._delay_s = min(delay_s * 2.0, self._source.reconnect_max_s)
        with self._lock:
            self._failed_since_frame = True
            self._state = "backoff"
            self._stalls += isinstance(exc, _Stalled)
        log.warning("camera %s: %s (%s); retrying in %.3g s",
                    self.name, redact(reason), redact_url(self._camera.url), delay_s)
        if not self._stop.wait(delay_s):
            self._set_state("connecting")

    def _stream_once(self) -> _End:
        """One open-read-release cycle. Raises _Lost (or anything cv2 raises) on failure."""
        try:
            capture = self._open_capture(self._camera.url, self._source)
        except Exception as exc:  # noqa: BLE001 - cv2.error and friends
            raise _Lost(f"cannot open: {exc}") from None
        try:
            if not capture.isOpened():
                raise _Lost("cannot open")
            return self._read_until_end(capture)
        finally:
            try:
                capture.release()
            except Exception as exc:  # noqa: BLE001 - nothing left to do with a broken capture
                log.debug("camera %s: release failed: %s", self.name, exc)

    def _read_until_end(self, capture: Capture) -> _End:
        """Read and deliver frames until stop, end of file, a failed read or a stall.

        The stall clock runs from the open or the last delivered frame, and a file's pacing
        pauses it (that wait is ours, not the camera's). It is checked whenever a read returns,
        so a stream is reopened at most one read (bounded by ``read_timeout_s``) after
        ``stall_timeout_s``; a picture that arrives later than that is not delivered.
        """
        pacer = _Pacer(self._file_fps(capture)) if self._is_file else None
        frames = 0
        unusable = 0
        waiting_since = time.monotonic()
        while not self._stop.is_set():
            try:
                ok, image = capture.read()
            except Exception as exc:  # noqa: BLE001 - cv2.error
                raise _Lost(f"read error: {exc}") from None
            now = time.monotonic()
            silent_s = now - waiting_since
            if silent_s > self._source.stall_timeout_s:
                detail = f" ({unusable} unusable pictures)" if unusable else ""
                raise _Stalled(f"stalled: no frame for {silent_s:.1f} s{detail}")
            if not ok:
                if self._is_file and frames:
                    return _End.REWIND if self._camera.loop_file else _End.EOF
                raise _Lost("read failed" if frames or not self._is_file else "no frame in file")
            reason = unusable_reason(image)
            if reason is not None:
                if unusable == 0:
                    log.debug("camera %s: unusable picture (%s)", self.name, reason)
                unusable += 1
                continue
            self._deliver(image, now)
            frames += 1
            unusable = 0
            if pacer is not None and self._stop.wait(pacer.wait_s(now)):
                break
            waiting_since = time.monotonic()
        return _End.STOP

    def _file_fps(self, capture: Capture) -> float:
        fps = capture.get(cv2.CAP_PROP_FPS)
        return fps if 0.0 < fps <= _MAX_FILE_FPS else _FALLBACK_FILE_FPS

    def _deliver(self, image: Any, now: float) -> None:
        captured_at = datetime.now(UTC)
        with self._lock:
            index = self._frames_read
            self._frames_read += 1
            self._last_frame_at = now
            self._state = "streaming"
            resumed = self._failed_since_frame
            if resumed:
                self._reconnects += 1
                self._failed_since_frame = False
        self._delay_s = self._source.reconnect_initial_s
        if resumed or index == 0:
            log.info("camera %s: streaming %dx%d from %s", self.name, image.shape[1],
                     image.shape[0], redact_url(self._camera.url))
        if resumed and self._motion is not None:
            # Another connection may show another picture: the old background means nothing.
            self._motion = MotionDetector(self._motion.config)
        if self._tap is not None:
            self._tap.offer(image, now, captured_at)
        motion = self._motion.update(image) if self._motion is not None else None
        self._motion_since = combine(self._motion_since, motion, first=self._nothing_since)
        self._nothing_since = False
        if not self._cadence.due(now) or self._detection_paused:
            return
        frame = Frame(self.name, index, image, captured_at, now, self._motion_since)
        self._motion_since, self._nothing_since = None, True
        with self._lock:
            self._frames_offered += 1
        self._slot.put(frame)
