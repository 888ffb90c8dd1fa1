"""The naive reference of ``monitor bench``: the loop a user would write without the daemon.

One thread per camera, each with its own ultralytics model, calling ``model.track`` on every
frame. Cameras are live: frame ``n`` of a camera arrives at ``origin + n / fps`` (a file's
frames from the start of the measured window; a stream's from its first read, as if it were
consumed in real time), and like OpenCV on RTSP the frames are buffered, never dropped, so a
loop slower than the camera falls further behind and its latency (inference finished minus
arrival) grows for as long as it runs.

This module imports ultralytics itself, against the rule that only ``monitor/detect/yolo.py``
does: the reference must be the user's code (a private model per thread, ``model.track`` with
its default tracker), which the daemon's adapter deliberately does not offer.
"""

from __future__ import annotations

import math
import os
import resource
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from monitor.redact import redact_url
from monitor.detect.yolo import resolve_model
from monitor.ingest.source import ensure_rtsp_capture_options

T = TypeVar("T")

# Used when the source declares no usable frame rate (the daemon's capture does the same).
_FALLBACK_FPS = 25.0
_MAX_FPS = 240.0
_WARM_UP_SHAPE = (480, 640, 3)


class NaiveRunError(Exception):
    """A camera of the naive run could not open, load its model, or read; one line of text."""


@dataclass(frozen=True, slots=True)
class CameraCounts:
    """What one camera of the naive loop did during the measured window.

    Attributes:
        camera: ``cam1``, ``cam2``...
        fps: the source's frame rate, frames per second (the arrival rate).
        frames_arrived: frames whose arrival time fell within the window (a stream's frames
            arrive from its first read, which the window includes).
        frames_processed: frames whose inference finished within the window.
        latency_p50_s: median latency, seconds (inference finished minus arrival); None if no
            frame was processed, like the other latency fields.
        latency_p95_s: 95th percentile latency, seconds.
        latency_max_s: largest latency, seconds.
        latency_last_s: median latency of the frames finished in the last part of the window
            (``last_fraction``, 10 % by default), seconds: growth shows as last >> p50.
        stream_lost_at_s: seconds into the window when a stream stopped giving frames (the
            camera's loop ended there, as the user's would); None if it never did. A file
            never ends: it is looped.
    """

    camera: str
    fps: float
    frames_arrived: int
    frames_processed: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None
    latency_last_s: float | None
    stream_lost_at_s: float | None = None


@dataclass(frozen=True, slots=True)
class TimelinePoint:
    """One processed frame: when its inference finished and how late it was.

    Attributes:
        elapsed_s: seconds since the measured window began.
        camera: the camera's name.
        latency_s: inference finished minus arrival, seconds.
    """

    elapsed_s: float
    camera: str
    latency_s: float


@dataclass(frozen=True, slots=True)
class NaiveRun:
    """The result of one naive run; ``dataclasses.asdict`` makes it JSON-serialisable.

    Attributes:
        source: the video file or stream URL every camera read.
        model: the resolved model path.
        imgsz: inference size, pixels.
        wall_s: length of the measured window, seconds (warm-up excluded).
        cpu_s: CPU time of the whole process (all threads) over the window, seconds.
        machine_cpu_s: CPU time of every process on the machine over the window (Linux
            ``/proc/stat``), seconds; None where unavailable. Well above ``cpu_s`` means other
            work competed for the cores and the run is not representative.
        peak_rss_mb: peak resident memory of the process at the end, MiB (includes loading).
        cameras: one entry per camera, in order.
        timeline: processed frames of all cameras sorted by time, at most ``timeline_points``
            per camera (evenly decimated, first and last kept).
    """

    source: str
    model: str
    imgsz: int
    wall_s: float
    cpu_s: float
    machine_cpu_s: float | None
    peak_rss_mb: float
    cameras: tuple[CameraCounts, ...]
    timeline: tuple[TimelinePoint, ...]


# --- pure helpers ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between neighbours (numpy's default).

    Args:
        values: at least one number, any order.
        q: percentile, 0..100.

    Returns:
        The interpolated value.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q}: expected 0..100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def decimate(items: Sequence[T], max_points: int) -> list[T]:
    """At most ``max_points`` items evenly spread over ``items``, keeping the first and last.

    Args:
        items: the full series, in order.
        max_points: the most to keep, >= 2.

    Returns:
        A new list (all items if there are few enough).
    """
    if max_points < 2:
        raise ValueError(f"max_points={max_points}: expected >= 2")
    if len(items) <= max_points:
        return list(items)
    step = (len(items) - 1) / (max_points - 1)
    return [items[round(i * step)] for i in range(max_points)]


def frames_arrived(origin: float, fps: float, end: float) -> int:
    """How many frames have arrived by ``end`` if frame ``n`` arrives at ``origin + n / fps``.

    Args:
        origin: arrival time of frame 0, seconds (the same clock as ``end``).
        fps: frames per second, > 0.
        end: the time of the count, seconds.

    Returns:
        The count, >= 0.
    """
    # A hair of tolerance: the frame arriving exactly at ``end`` counts despite float rounding.
    return max(0, math.floor((end - origin) * fps + 1e-9) + 1)


def summarise(
    camera: str,
    fps: float,
    arrived: int,
    points: Sequence[TimelinePoint],
    window_s: float,
    last_fraction: float,
    stream_lost_at_s: float | None = None,
) -> CameraCounts:
    """One camera's counts and latency summary from its processed frames.

    Args:
        camera: the camera's name.
        fps: its frame rate.
        arrived: frames that arrived in the window (see `frames_arrived`).
        points: its processed frames, in the order processed.
        window_s: length of the window, seconds.
        last_fraction: the final part of the window whose median latency is reported, 0..1.
        stream_lost_at_s: when the camera's stream broke, seconds into the window; None if not.

    Returns:
        The summary; latencies are None when nothing was processed (and ``latency_last_s`` when
        nothing finished in the final part).
    """
    latencies = [p.latency_s for p in points]
    last = [p.latency_s for p in points if p.elapsed_s >= (1.0 - last_fraction) * window_s]
    return CameraCounts(
        camera=camera,
        fps=fps,
        frames_arrived=arrived,
        frames_processed=len(points),
        latency_p50_s=percentile(latencies, 50) if latencies else None,
        latency_p95_s=percentile(latencies, 95) if latencies else None,
        latency_max_s=max(latencies) if latencies else None,
        latency_last_s=percentile(last, 50) if last else None,
        stream_lost_at_s=stream_lost_at_s,
    )


def machine_busy_s(stat: Path = Path("/proc/stat")) -> float | None:
    """CPU seconds all cores of the machine have been busy since boot (not idle, not iowait).

    Args:
        stat: the kernel's CPU statistics file.

    Returns:
        Seconds, or None if the file is missing or not in Linux's format.
    """
    try:
        fields = stat.read_text().splitlines()[0].split()
        ticks = [int(v) for v in fields[1:]]
        # user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
        busy = sum(ticks[:8]) - ticks[3] - ticks[4]
        return busy / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Settings:
    source: str
    live: bool
    model: str
    imgsz: int
    conf: float


@dataclass(frozen=True, slots=True)
class _Ends:
    """Clock readings when the window was stopped."""

    monotonic: float
    cpu: float
    machine: float | None


class _Window:
    """The measured window shared by the camera threads: starts when every party is ready."""

    def __init__(self, parties: int, seconds: float) -> None:
        self.seconds = seconds
        self.stop = threading.Event()
        self.start = 0.0
        self.end = 0.0
        self.cpu_start = 0.0
        self.machine_start: float | None = None
        self._barrier = threading.Barrier(parties, action=self._begin)

    def _begin(self) -> None:  # runs once, in the last thread to become ready
        self.start = time.monotonic()
        self.end = self.start + self.seconds
        self.cpu_start = time.process_time()
        self.machine_start = machine_busy_s()

    def ready(self, timeout_s: float) -> None:
        self._barrier.wait(timeout_s)

    def abort(self) -> None:
        self._barrier.abort()


@dataclass
class _Camera:
    """One camera thread's own state; only that thread writes it until it has been joined.

    ``origin`` is the arrival time of frame 0 (None until known): the window's start for a file,
    the first successful read for a stream.
    """

    name: str
    settings: _Settings
    fps: float = 0.0
    origin: float | None = None
    points: list[TimelinePoint] = field(default_factory=list)
    error: str | None = None
    stream_lost_at_s: float | None = None  # seconds into the window


def _open(camera: _Camera) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(camera.settings.source)
    if not capture.isOpened():
        raise NaiveRunError(f"cannot open {redact_url(camera.settings.source)}")
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    camera.fps = fps if 0.0 < fps <= _MAX_FPS else _FALLBACK_FPS
    return capture


def _read(capture: cv2.VideoCapture, live: bool) -> tuple[bool, Any]:
    """Read the next frame; a file starts over at its end, as a looped camera would."""
    ok, image = capture.read()
    if not ok and not live:
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        ok, image = capture.read()
    return ok, image


def _track(model: Any, image: Any, settings: _Settings) -> None:
    model.track(image, persist=True, imgsz=settings.imgsz, conf=settings.conf, verbose=False)


def _run_camera(camera: _Camera, window: _Window, ready_timeout_s: float) -> None:
    """The naive user's loop for one camera, bracketed by the shared window."""
    import torch
    from ultralytics.models import YOLO  # the user's code: see the module docstring

    settings = camera.settings
    model = YOLO(settings.model)
    # Warm-up on a blank 4:3 picture (vtest's letterboxed input shape at imgsz 640), so neither
    # source has to be read before the window.
    _track(model, np.zeros(_WARM_UP_SHAPE, dtype=np.uint8), settings)
    # ultralytics' first predict resets torch's (per OS thread) count: one thread per camera.
    torch.set_num_threads(1)
    # A stream opens only when the window starts: what it buffered while the models loaded
    # would be a backlog of the set-up, not of the loop.
    capture = None if settings.live else _open(camera)
    try:
        window.ready(ready_timeout_s)
        if capture is None:
            capture = _open(camera)
        _loop(camera, model, capture, window)
    finally:
        if capture is not None:
            capture.release()


def _loop(camera: _Camera, model: Any, capture: cv2.VideoCapture, window: _Window) -> None:
    settings = camera.settings
    camera.origin = None if settings.live else window.start
    index = 0
    while not window.stop.is_set():
        if camera.origin is not None:
            arrival = camera.origin + index / camera.fps
            if arrival > window.end:
                break
            # Buffered, never dropped: the next frame in sequence, however long ago it arrived.
            if window.stop.wait(max(0.0, arrival - time.monotonic())):
                break
        ok, image = _read(capture, settings.live)
        if not ok and settings.live and camera.origin is not None:
            # A loop minutes behind a live stream can lose it (a server may drop a client that
            # reads too slowly): that is the naive loop's result, not a failure of the bench.
            # The other cameras go on; this one's loop ends, as the user's would. A failure
            # noticed after the window (other cameras hanging up) is not part of the run.
            failed_at = time.monotonic()
            if failed_at <= window.end:
                camera.stream_lost_at_s = failed_at - window.start
            return
        if not ok and settings.live:  # not one frame: the stream is wrong, not the loop slow
            raise NaiveRunError(f"{redact_url(settings.source)}: no frame from the stream")
        if not ok:
            raise NaiveRunError(f"{settings.source} ended or failed to read")
        if camera.origin is None:  # a stream: real-time consumption is timed from its first frame
            camera.origin = arrival = time.monotonic()
        _track(model, image, settings)
        done = time.monotonic()
        if done > window.end:
            break  # finished after the window: outside its CPU time, so not counted either
        camera.points.append(TimelinePoint(done - window.start, camera.name, done - arrival))
        index += 1


def _thread_main(camera: _Camera, window: _Window, ready_timeout_s: float) -> None:
    try:
        _run_camera(camera, window, ready_timeout_s)
    except threading.BrokenBarrierError:
        camera.error = "the run did not begin (another camera failed, or not ready in time)"
    except Exception as exc:  # reported by the main thread, one line per camera
        camera.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        window.abort()
        window.stop.set()


def _wait_window(
    window: _Window, progress: Callable[[float], None] | None, progress_interval_s: float
) -> None:
    while True:
        left = window.end - time.monotonic()
        if left <= 0 or window.stop.is_set():
            break
        if progress is not None:
            progress(min(1.0, 1.0 - left / window.seconds))
        window.stop.wait(min(left, progress_interval_s))
    if progress is not None:
        progress(1.0)


def run_naive(
    video: Path | None,
    cameras: int,
    seconds: float,
    *,
    model: str,
    imgsz: int = 640,
    conf: float = 0.25,
    source_url: str | None = None,
    progress: Callable[[float], None] | None = None,
    last_fraction: float = 0.1,
    timeline_points: int = 300,
    ready_timeout_s: float = 600.0,
    join_timeout_s: float = 60.0,
    progress_interval_s: float = 0.5,
) -> NaiveRun:
    """Run the naive loop on ``cameras`` copies of one source for ``seconds`` of wall time.

    Every camera thread loads its own model, opens its own capture and warms up on its first
    frame; the window starts when all are ready, so loading and warm-up are excluded.

    Args:
        video: a video file, looped, standing in for each camera; None when ``source_url`` is given.
        cameras: number of camera threads, >= 1.
        seconds: length of the measured window, > 0.
        model: the model spec, as in ``[detector] model`` (resolved with ``resolve_model``).
        imgsz: inference size, pixels.
        conf: detector confidence threshold.
        source_url: a stream (``rtsp://...``) instead of ``video``; each camera opens it.
        progress: called with the elapsed fraction of the window (0..1) from the calling thread.
        last_fraction: final part of the window reported as ``latency_last_s``, 0..1.
        timeline_points: the most timeline points kept per camera.
        ready_timeout_s: the most seconds to wait for every model to load and warm up.
        join_timeout_s: the most seconds to wait for each thread after the window (an
            inference in flight finishes first).
        progress_interval_s: seconds between ``progress`` calls.

    Returns:
        The counts, latencies, CPU time and memory of the run.

    Raises:
        NaiveRunError: the file is missing, or a camera could not load or open its source, a
            file could not be read, or a stream gave no frame at all (named). A stream lost
            after its first frame is a result (``CameraCounts.stream_lost_at_s``).
        DetectorError: the model spec names no loadable file.

    Example:
        >>> run = run_naive(Path("vtest.avi"), 2, 20.0, model="fall_detection/models/best.pt")
        >>> run.cameras[0].latency_last_s  # doctest: +SKIP
    """
    if (video is None) == (source_url is None):
        raise ValueError("give exactly one of video and source_url")
    if cameras < 1 or seconds <= 0 or not 0.0 < last_fraction <= 1.0:
        raise ValueError(
            f"cameras={cameras} (>= 1), seconds={seconds} (> 0), "
            f"last_fraction={last_fraction} (0 < f <= 1): out of range"
        )
    if video is not None and not video.is_file():
        raise NaiveRunError(f"{video}: no such file")
    if source_url is not None:
        ensure_rtsp_capture_options()  # the daemon's transport (TCP), so both see the same stream
    settings = _Settings(
        source=source_url if source_url is not None else str(video),
        live=source_url is not None,
        model=resolve_model(model),
        imgsz=imgsz,
        conf=conf,
    )
    window = _Window(cameras + 1, seconds)
    states = [_Camera(f"cam{i + 1}", settings) for i in range(cameras)]
    threads = [
        threading.Thread(target=_thread_main, args=(s, window, ready_timeout_s), name=s.name,
                         daemon=True)
        for s in states
    ]
    for thread in threads:
        thread.start()
    try:
        window.ready(ready_timeout_s)
        _wait_window(window, progress, progress_interval_s)
    except threading.BrokenBarrierError:
        window.abort()
        raise NaiveRunError(_errors(states) or "cameras not ready within ready_timeout_s") from None
    finally:
        window.stop.set()
        stopped_at, cpu_end, machine_end = time.monotonic(), time.process_time(), machine_busy_s()
        for thread in threads:
            thread.join(join_timeout_s)
    return _result(settings, states, window, _Ends(stopped_at, cpu_end, machine_end),
                   last_fraction, timeline_points)


def _errors(states: Sequence[_Camera]) -> str:
    """The cameras' errors as one line; a camera that failed itself first, then the others."""
    failed = sorted((s for s in states if s.error is not None),
                    key=lambda s: s.error is not None and s.error.startswith("the run did not"))
    return "; ".join(f"{s.name}: {s.error}" for s in failed)


def _arrivals_end(camera: _Camera, window: _Window, end: float) -> float:
    """Frames arrive until the window's end, or until the camera's stream was lost."""
    if camera.stream_lost_at_s is None:
        return end
    return min(end, window.start + camera.stream_lost_at_s)


def _result(
    settings: _Settings,
    states: Sequence[_Camera],
    window: _Window,
    ends: _Ends,
    last_fraction: float,
    timeline_points: int,
) -> NaiveRun:
    errors = _errors(states)
    if errors:
        raise NaiveRunError(errors)
    end = min(ends.monotonic, window.end)
    wall_s = end - window.start
    counts = tuple(
        summarise(s.name, s.fps,
                  frames_arrived(s.origin, s.fps, _arrivals_end(s, window, end))
                  if s.origin is not None else 0,
                  s.points, wall_s, last_fraction, s.stream_lost_at_s)
        for s in states
    )
    timeline = sorted(
        (p for s in states for p in decimate(s.points, timeline_points)),
        key=lambda p: p.elapsed_s,
    )
    return NaiveRun(
        source=settings.source,
        model=settings.model,
        imgsz=settings.imgsz,
        wall_s=wall_s,
        cpu_s=ends.cpu - window.cpu_start,
        machine_cpu_s=(ends.machine - window.machine_start
                       if ends.machine is not None and window.machine_start is not None else None),
        # Linux reports ru_maxrss in KiB.
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        cameras=counts,
        timeline=tuple(timeline),
    )
