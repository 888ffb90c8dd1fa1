"""Ingest: the newest-frame slot, and capture threads on a file, fakes and a real RTSP server."""

from __future__ import annotations

import logging
import socket
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

from monitor.config import CameraConfig, SourceConfig
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
    source = CameraSource(CameraConfig(name="file", url=str(footage)), FAST, slot)
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


def test_file_loops_with_increasing_indexes(short_clip: Path, collect: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    slot, collector = collect()
    source = CameraSource(CameraConfig(name="loop", url=str(short_clip)), FAST, slot)
    source.start()
    assert wait_until(lambda: source.stats().frames_read >= 12, 3.0)
    assert source.stop(timeout_s=2.0)

    indexes = [f.index for f in collector.frames]
    assert indexes == sorted(set(indexes)) and indexes[-1] >= 11
    assert source.stats().reconnects == 0
    assert warnings_of(caplog) == []  # a rewind is not a failure


def test_file_without_loop_ends(short_clip: Path) -> None:
    slot = LatestFrame()
    source = CameraSource(CameraConfig(name="once", url=str(short_clip), loop_file=False), FAST, slot)
    source.start()
    assert wait_until(lambda: source.stats().state == "ended", 3.0)
    assert source.stats().frames_read == 5
    assert source.stop(timeout_s=1.0)
    assert source.stats().state == "ended"


# --- CameraSource with fake captures: failures, backoff, stop -----------------------------------

class FakeCapture:
    """A capture whose reads follow a script: an array, False (failed read), or an exception."""

    def __init__(self, script: Iterator[Any], opened: bool = True) -> None:
        self._script, self._opened = script, opened
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return self._opened

    def read(self) -> tuple[bool, Any]:
        step = next(self._script, False)
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, threading.Event):
            step.wait()
            return False, None
        return (True, step) if isinstance(step, np.ndarray) else (bool(step), None)

    def get(self, propId: int) -> float:  # noqa: N803
        return 10.0

    def release(self) -> None:
        self.released = True


def fake_camera(name: str = "fake") -> CameraConfig:
    return CameraConfig(name=name, url="rtsp://user:secret@camera.invalid/stream")


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


def test_stall_without_frames_reopens(caplog: pytest.LogCaptureFixture) -> None:
    empty_reads = iter(lambda: True, None)  # read() "succeeds" but never yields a picture
    config = FAST.model_copy(update={"stall_timeout_s": 0.2})
    source = start_fake(lambda: FakeCapture(empty_reads), config)
    assert wait_until(lambda: bool(warnings_of(caplog)), 2.0)
    assert source.stop(timeout_s=1.0)
    assert "stalled: no frame for 0." in warnings_of(caplog)[0]  # 0.2 s, or a bit more
    assert source.stats().reconnects == 0  # frames never came back


def test_stop_returns_promptly_during_backoff() -> None:
    config = FAST.model_copy(update={"reconnect_initial_s": 30.0, "reconnect_max_s": 30.0})
    source = start_fake(lambda: FakeCapture(iter(()), opened=False), config)
    assert wait_until(lambda: source.stats().state == "backoff", 2.0)
    started = time.monotonic()
    assert source.stop(timeout_s=2.0)
    assert time.monotonic() - started < 0.5
    assert source.stats().state == "stopped"


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
        sources.append(CameraSource(CameraConfig(name=name, url=rtsp_server.url(name)), FAST, slot))
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
    camera = CameraConfig(name="cam1", url=rtsp_server.url("cam1", userinfo="user:secret"))
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
    source = CameraSource(CameraConfig(name="gone", url=url), FAST, LatestFrame())
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
