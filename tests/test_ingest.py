"""Ingest: the newest-frame slot, and capture threads on a file, fakes and a real RTSP server."""

from __future__ import annotations

import itertools
import logging
import re
import socket
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from monitor.config import CameraConfig, MotionConfig, SourceConfig
from monitor.ingest import CameraSource, LatestFrame
from monitor.types import Frame
from tests.fixtures.rtsp import RtspServer

SOURCE_LOGGER = "monitor.ingest.source"
FAST = SourceConfig(open_timeout_s=2.0, read_timeout_s=1.0, stall_timeout_s=5.0,
                    reconnect_initial_s=0.1, reconnect_max_s=0.4)


def make_frame(index: int, camera: str = "cam") -> Frame:
    return Frame(camera, index, np.zeros((2, 2, 3), np.uint8), datetime.now(UTC), time.monotonic())


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == SOURCE_LOGGER and r.levelno == logging.WARNING]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    """The consumer side: waits on the shared event and takes every frame it can."""

    def __init__(self, slot: LatestFrame, wake: threading.Event) -> None:
        self.frames: list[Frame] = []
        self._slot, self._wake = slot, wake
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            if (frame := self._slot.take()) is not None:
                self.frames.append(frame)

    def close(self) -> None:
        self._done.set()
        self._thread.join(1.0)


@pytest.fixture
def collect() -> Iterator[Callable[[], tuple[LatestFrame, Collector]]]:
    made: list[Collector] = []

    def make() -> tuple[LatestFrame, Collector]:
        wake = threading.Event()
        slot = LatestFrame(on_put=wake.set)
        made.append(Collector(slot, wake))
        return slot, made[-1]

    yield make
    for collector in made:
        collector.close()


@pytest.fixture(autouse=True)
def no_thread_leaks_or_crashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test must stop its sources, and no thread may die of an exception."""
    crashes: list[str] = []
    monkeypatch.setattr(threading, "excepthook",
                        lambda args: crashes.append(f"{args.thread}: {args.exc_value!r}"))
    yield
    assert wait_until(lambda: not [t for t in threading.enumerate()
                                   if t.name.startswith("source-")], 3.0), "capture thread leaked"
    assert crashes == []


@pytest.fixture
def short_clip(footage: Path, tmp_path: Path) -> Path:
    """The first 5 frames of the footage as a 50 fps MJPEG file, so loops happen within 0.1 s."""
    reader = cv2.VideoCapture(str(footage))
    path = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50.0, (768, 576))
    for _ in range(5):
        ok, image = reader.read()
        assert ok
        writer.write(image)
    writer.release()
    reader.release()
    return path


# --- LatestFrame --------------------------------------------------------------------------------

def test_take_is_none_when_empty_and_clears_the_slot() -> None:
    slot = LatestFrame()
    assert slot.take() is None
    frame = make_frame(0)
    slot.put(frame)
    assert slot.take() is frame
    assert slot.take() is None
    assert slot.dropped == 0


def test_put_replaces_unconsumed_frame_and_counts_it_dropped() -> None:
    calls: list[None] = []
    slot = LatestFrame(on_put=lambda: calls.append(None))
    for index in range(3):
        slot.put(make_frame(index))
    taken = slot.take()
    assert taken is not None and taken.index == 2
    assert slot.dropped == 2
    assert len(calls) == 3


def test_concurrent_put_and_take_lose_nothing_uncounted() -> None:
    slot = LatestFrame()
    taken: list[int] = []
    done = threading.Event()

    def consume() -> None:
        while not done.is_set():
            if (frame := slot.take()) is not None:
                taken.append(frame.index)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for index in range(20_000):
        slot.put(make_frame(index))
    done.set()
    consumer.join()
    leftover = 1 if slot.take() is not None else 0
    assert len(taken) + slot.dropped + leftover == 20_000
    assert taken == sorted(taken)


# --- CameraSource on a local file ---------------------------------------------------------------

def test_file_is_paced_at_its_own_fps(footage: Path, collect: Any) -> None:
    slot, collector = collect()
    source = CameraSource(CameraConfig(detect_fps=60, name="file", url=str(footage)), FAST, slot)
    source.start()
    time.sleep(2.0)
    assert source.stop(timeout_s=2.0)

    frames = collector.frames
    assert 15 <= source.stats().frames_read <= 25  # 10 fps for 2 s, not as fast as it decodes
    assert [f.index for f in frames] == sorted({f.index for f in frames})
    gaps = [b.monotonic - a.monotonic for a, b in zip(frames, frames[1:], strict=False)]
    assert statistics.median(gaps) == pytest.approx(0.1, abs=0.02)
    assert frames[0].image.shape == (576, 768, 3)
    assert frames[0].camera == "file" and frames[0].captured_at.tzinfo is UTC
    assert source.stats().state == "stopped"


def test_only_detect_fps_frames_are_offered_each_with_the_motion_since_the_last(
    footage: Path, collect: Any
) -> None:
    slot, collector = collect()
    motion = MotionConfig(warmup_frames=3)
    source = CameraSource(CameraConfig(detect_fps=5, name="file", url=str(footage)), FAST, slot,
                          motion=motion)
    source.start()
    assert wait_until(lambda: source.stats().frames_read >= 20, 5.0)
    assert source.stop(timeout_s=2.0)

    stats = source.stats()
    assert abs(stats.frames_offered - stats.frames_read / 2) <= 2  # 10 fps file, detect_fps 5
    frames = collector.frames
    assert len(frames) == stats.frames_offered
    assert frames[0].motion is None  # no background yet: the whole frame must be looked at
    later = [f.motion for f in frames[3:]]
    assert all(m is not None for m in later)
    assert any(m is not None and m.regions for m in later)  # vtest's people walk


def test_capture_threads_run_nicer_than_the_daemon(footage: Path, collect: Any) -> None:
    slot, _ = collect()
    source = CameraSource(CameraConfig(detect_fps=60, name="nice", url=str(footage)),
                          FAST.model_copy(update={"capture_nice": 3}), slot)
    source.start()
    assert wait_until(lambda: source.stats().frames_read >= 2, 5.0)
    (thread,) = [t for t in threading.enumerate() if t.name == "source-nice"]
    assert thread.native_id is not None
    ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == min(19, ours + 3)
    assert source.stop(timeout_s=2.0)


def test_file_loops_with_increasing_indexes(short_clip: Path, collect: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    slot, collector = collect()
    source = CameraSource(CameraConfig(detect_fps=60, name="loop", url=str(short_clip)), FAST, slot)
    source.start()
    assert wait_until(lambda: source.stats().frames_read >= 12, 3.0)
    assert source.stop(timeout_s=2.0)

    indexes = [f.index for f in collector.frames]
    assert indexes == sorted(set(indexes)) and indexes[-1] >= 11
    assert source.stats().reconnects == 0
    assert warnings_of(caplog) == []  # a rewind is not a failure


def test_file_without_loop_ends(short_clip: Path) -> None:
    slot = LatestFrame()
    source = CameraSource(CameraConfig(detect_fps=60, name="once", url=str(short_clip), loop_file=False), FAST, slot)
    assert not source.is_alive()
    source.start()
    assert wait_until(lambda: source.stats().state == "ended", 3.0)
    assert wait_until(lambda: not source.is_alive(), 1.0)
    assert source.stats().frames_read == 5
    assert source.stop(timeout_s=1.0)
    assert source.stats().state == "ended"


# --- CameraSource with fake captures: failures, backoff, stop -----------------------------------

class FakeCapture:
    """A capture whose reads follow a script: an array, True (a read without picture), False (a
    failed read), an exception, or an Event (a read blocked until it is set).

    Args:
        read_s: wall-clock seconds each read takes before it returns, as a camera's would.
        fps: the frame rate it declares (a file source is paced to it).
    """

    def __init__(self, script: Iterator[Any], opened: bool = True, read_s: float = 0.0,
                 fps: float = 10.0) -> None:
        self._script, self._opened, self._read_s, self._fps = script, opened, read_s, fps
        self.released = False
        self.released_at: float | None = None

    def isOpened(self) -> bool:  # noqa: N802
        return self._opened

    def read(self) -> tuple[bool, Any]:
        if self._read_s:
            time.sleep(self._read_s)
        step = next(self._script, False)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, threading.Event):
            step.wait()
            return False, None
        return (True, step) if isinstance(step, np.ndarray) else (bool(step), None)

    def get(self, propId: int) -> float:  # noqa: N803
        return self._fps if propId == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True
        self.released_at = time.monotonic()


def fake_camera(name: str = "fake") -> CameraConfig:
    return CameraConfig(detect_fps=60, name=name, url="rtsp://user:secret@camera.invalid/stream")


def start_fake(make: Callable[[], FakeCapture], config: SourceConfig = FAST) -> CameraSource:
    source = CameraSource(fake_camera(), config, LatestFrame(), open_capture=lambda url, cfg: make())
    source.start()
    return source


IMAGE = np.zeros((4, 4, 3), np.uint8)


def test_backoff_doubles_to_the_cap_and_never_logs_the_password(
        caplog: pytest.LogCaptureFixture) -> None:
    source = start_fake(lambda: FakeCapture(iter(()), opened=False))
    assert wait_until(lambda: len(warnings_of(caplog)) >= 5, 3.0)
    assert source.stop(timeout_s=1.0)

    lines = warnings_of(caplog)
    assert [line.rsplit("retrying in ", 1)[1] for line in lines[:5]] == \
           ["0.1 s", "0.2 s", "0.4 s", "0.4 s", "0.4 s"]
    assert all("cannot open (rtsp://user:***@camera.invalid/stream)" in line for line in lines)
    assert "secret" not in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize("failure", [cv2.error("decoder exploded"), False],
                         ids=["cv2-error", "failed-read"])
def test_read_failure_releases_and_reopens_with_backoff_reset(
        failure: Any, caplog: pytest.LogCaptureFixture) -> None:
    opened: list[FakeCapture] = []

    def make() -> FakeCapture:
        opened.append(FakeCapture(iter([IMAGE, failure])))  # one good frame, then a failure
        return opened[-1]

    source = start_fake(make)
    assert wait_until(lambda: source.stats().reconnects >= 3, 3.0)
    assert source.stop(timeout_s=1.0)

    assert all(capture.released for capture in opened)
    # a good frame after each reopen resets the backoff: every delay is the initial one
    assert {line.rsplit("retrying in ", 1)[1] for line in warnings_of(caplog)} == {"0.1 s"}
    assert "Traceback" not in caplog.text


STALL = FAST.model_copy(update={"stall_timeout_s": 0.5})
# Reads that succeed with a picture a Frame cannot hold; each stands for a real decoder failure.
UNUSABLE = [
    pytest.param(True, id="no-picture"),  # cv2 grabbed a packet but decoded nothing
    pytest.param(np.zeros((0, 0, 3), np.uint8), id="empty"),
    pytest.param(np.zeros((4, 4), np.uint8), id="grey"),
    pytest.param(np.zeros((4, 4, 4), np.uint8), id="four-channels"),
    pytest.param(np.zeros((4, 4, 3), np.float32), id="float"),
]


@pytest.mark.parametrize("unusable", UNUSABLE)
def test_stream_of_unusable_pictures_is_reopened_after_the_stall_timeout(
        unusable: Any, collect: Any, caplog: pytest.LogCaptureFixture) -> None:
    """An RTSP camera whose connection stays up and whose reads keep succeeding at 20 fps, but
    whose decoder yields nothing usable after one good frame (e.g. an H.264 stream that lost its
    keyframes). Only the wall clock can tell: no read ever fails."""
    opened: list[FakeCapture] = []

    def make() -> FakeCapture:
        if opened:  # the reopened stream is healthy again
            script: Iterator[Any] = itertools.repeat(IMAGE)
        else:
            script = itertools.chain([IMAGE], itertools.repeat(unusable))
        opened.append(FakeCapture(script, read_s=0.05))
        return opened[-1]

    slot, collector = collect()
    source = CameraSource(fake_camera(), STALL, slot, open_capture=lambda url, cfg: make())
    source.start()
    assert wait_until(lambda: source.stats().reconnects == 1, 3.0)
    assert source.stop(timeout_s=1.0)

    first_frame = collector.frames[0]
    assert first_frame.index == 0 and opened[0].released_at is not None
    silent_s = opened[0].released_at - first_frame.monotonic
    assert 0.5 <= silent_s < 0.5 + 0.5, silent_s  # the timeout, plus at most ~one read (+ load)
    [warning] = warnings_of(caplog)
    assert re.fullmatch(r"camera fake: stalled: no frame for 0\.[5-9] s \(\d+ unusable pictures\) "
                        r"\(rtsp://user:\*\*\*@camera\.invalid/stream\); retrying in 0\.1 s",
                        warning), warning
    assert all(f.image.shape == (4, 4, 3) for f in collector.frames)
    assert source.stats().state == "stopped" and "secret" not in caplog.text


def test_reads_too_slow_to_deliver_a_frame_in_time_are_reopened(
        caplog: pytest.LogCaptureFixture) -> None:
    """A camera on a saturated link: each read returns a good picture, but only after longer
    than stall_timeout_s (which cv2 allows when read_timeout_s exceeds it). The stream counts as
    stalled: nothing is delivered and it is reopened every time."""
    opened: list[FakeCapture] = []

    def make() -> FakeCapture:
        opened.append(FakeCapture(itertools.repeat(IMAGE), read_s=0.4))
        return opened[-1]

    config = FAST.model_copy(update={"stall_timeout_s": 0.25, "read_timeout_s": 1.0})
    source = start_fake(make, config)
    assert wait_until(lambda: len(warnings_of(caplog)) >= 2, 3.0)
    assert source.stop(timeout_s=1.0)

    assert source.stats().frames_read == 0 and source.stats().reconnects == 0
    assert len(opened) >= 2 and all(c.released for c in opened[:2])
    assert all(re.search(r"stalled: no frame for \d+\.\d s \(rtsp://user:\*\*\*@", w)
               for w in warnings_of(caplog))


def test_slow_stream_with_some_bad_pictures_is_not_a_stall(
        caplog: pytest.LogCaptureFixture) -> None:
    """A 10 fps camera whose every other picture is unusable: frames still come every 0.2 s,
    within the stall timeout, so the stream is never reopened."""
    opened: list[FakeCapture] = []

    def make() -> FakeCapture:
        opened.append(FakeCapture(itertools.cycle([IMAGE, True]), read_s=0.1))
        return opened[-1]

    source = start_fake(make, FAST.model_copy(update={"stall_timeout_s": 1.0}))
    time.sleep(2.5)  # 2.5 stall timeouts: a clock not reset by each delivered frame would fire
    assert source.stop(timeout_s=1.0)
    assert len(opened) == 1 and warnings_of(caplog) == []
    assert 5 <= source.stats().frames_read <= 13


def test_pacing_a_slow_file_is_not_a_stall(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """A recording at 2 fps stands in for a camera: the 0.5 s waits between its frames are our
    own pacing, not the camera's silence, so a 0.3 s stall timeout does not fire."""
    opened: list[FakeCapture] = []

    def make() -> FakeCapture:
        opened.append(FakeCapture(itertools.repeat(IMAGE), fps=2.0))
        return opened[-1]

    (tmp_path / "slow.avi").touch()  # the config checks it exists; the fake stands in for it
    camera = CameraConfig(detect_fps=60, name="slow-file", url=str(tmp_path / "slow.avi"))
    config = FAST.model_copy(update={"stall_timeout_s": 0.3})
    source = CameraSource(camera, config, LatestFrame(), open_capture=lambda url, cfg: make())
    source.start()
    time.sleep(1.3)
    assert source.stop(timeout_s=1.0)
    assert len(opened) == 1 and warnings_of(caplog) == []
    assert 2 <= source.stats().frames_read <= 3  # at 0, 0.5 and 1.0 s


def test_stop_returns_promptly_during_backoff() -> None:
    config = FAST.model_copy(update={"reconnect_initial_s": 30.0, "reconnect_max_s": 30.0})
    source = start_fake(lambda: FakeCapture(iter(()), opened=False), config)
    assert wait_until(lambda: source.stats().state == "backoff", 2.0)
    assert source.is_alive()  # a camera that cannot be opened does not end the thread
    started = time.monotonic()
    assert source.stop(timeout_s=2.0)
    assert time.monotonic() - started < 0.5
    assert source.stats().state == "stopped" and not source.is_alive()


def test_stop_reports_a_thread_stuck_in_a_blocking_read(caplog: pytest.LogCaptureFixture) -> None:
    unblock = threading.Event()
    source = start_fake(lambda: FakeCapture(iter([IMAGE, unblock])))
    assert wait_until(lambda: source.stats().frames_read == 1, 2.0)
    started = time.monotonic()
    assert source.stop(timeout_s=0.2) is False
    assert time.monotonic() - started < 0.5
    assert "still inside a blocking open/read" in caplog.text
    unblock.set()  # the read returns: the thread sees the stop and ends without a warning
    assert wait_until(lambda: source.stats().state == "stopped", 2.0)
    assert not any("retrying" in line for line in warnings_of(caplog))


# --- CameraSource against the real RTSP server --------------------------------------------------

@pytest.mark.integration
def test_rtsp_frames_arrive_from_two_cameras(rtsp_server: RtspServer, collect: Any) -> None:
    sources, collectors = [], []
    for name in ("cam1", "cam2"):
        slot, collector = collect()
        sources.append(CameraSource(CameraConfig(detect_fps=60, name=name, url=rtsp_server.url(name)), FAST, slot))
        collectors.append(collector)
    started = time.monotonic()
    for source in sources:
        source.start()
    assert wait_until(lambda: all(s.stats().frames_read >= 10 for s in sources), 10.0)
    elapsed_s = time.monotonic() - started
    for source in sources:
        assert source.stop(timeout_s=2.0)

    assert elapsed_s < 5.0  # ~0.5 s open + 1 s of frames at 10 fps
    for name, collector in zip(("cam1", "cam2"), collectors, strict=True):
        assert collector.frames[0].camera == name
        assert collector.frames[-1].image.shape == (576, 768, 3)
        assert collector.frames[-1].image.std() > 10  # real pictures, not a grey error frame


@pytest.mark.integration
def test_rtsp_server_restart_is_survived(rtsp_server: RtspServer, collect: Any,
                                         caplog: pytest.LogCaptureFixture) -> None:
    slot, _ = collect()
    camera = CameraConfig(detect_fps=60, name="cam1", url=rtsp_server.url("cam1", userinfo="user:secret"))
    source = CameraSource(camera, FAST, slot)
    source.start()
    assert wait_until(lambda: source.stats().frames_read >= 5, 10.0)

    rtsp_server.stop()
    assert wait_until(lambda: source.stats().state == "backoff", 5.0)
    first = warnings_of(caplog)[0]
    assert f"rtsp://user:***@127.0.0.1:{rtsp_server.port}/cam1" in first and "retrying in" in first
    before = source.stats().frames_read

    rtsp_server.start()
    assert wait_until(lambda: source.stats().frames_read >= before + 5, 10.0)
    stats = source.stats()
    assert stats.reconnects >= 1 and stats.state == "streaming"
    assert stats.last_frame_age_s is not None and stats.last_frame_age_s < 1.0
    assert source.stop(timeout_s=2.0)
    assert "secret" not in caplog.text


@pytest.mark.integration
def test_unreachable_camera_retries_and_stops_promptly(
        caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    url = f"rtsp://user:secret@127.0.0.1:{closed_port()}/cam1"
    source = CameraSource(CameraConfig(detect_fps=60, name="gone", url=url), FAST, LatestFrame())
    source.start()
    assert wait_until(lambda: len(warnings_of(caplog)) >= 3, 5.0)
    started = time.monotonic()
    assert source.stop(timeout_s=2.0)
    assert time.monotonic() - started < 2.0

    stats = source.stats()
    assert (stats.frames_read, stats.reconnects, stats.state) == (0, 0, "stopped")
    assert stats.last_frame_age_s is None
    assert all("user:***@" in line for line in warnings_of(caplog))
    assert "secret" not in caplog.text + "".join(capfd.readouterr())  # FFmpeg's own stderr too
