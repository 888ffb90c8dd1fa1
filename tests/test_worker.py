"""The inference worker: batching, routing, rate caps, ticks and failures, with a fake detector.

The slots are the real ``LatestFrame``; only the detector (our own ``Detector`` protocol) is fake.
Timings are asserted as counts within generous bounds: the test machine is small and noisy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from monitor.detect.worker import InferenceWorker
from monitor.ingest.latest import LatestFrame
from monitor.types import Detections, Frame
from tests.builders import make_detection, make_frame

WORKER_LOGGER = "monitor.detect.worker"
STOP_TIMEOUT_S = 5.0


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


class FakeDetector:
    """Records every batch and finds one person per frame.

    Args:
        fail_calls: how many of the first calls raise instead.
        delay_s: how long each call takes.
        refill: slots to put a fresh frame into during every call (a camera that never pauses).
    """

    def __init__(self, *, fail_calls: int = 0, delay_s: float = 0.0,
                 refill: dict[str, LatestFrame] | None = None) -> None:
        self.batches: list[list[Frame]] = []
        self.call_times: list[float] = []
        self._fail_calls = fail_calls
        self._delay_s = delay_s
        self._refill = refill if refill is not None else {}

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        self.call_times.append(time.monotonic())
        self.batches.append(list(frames))
        for camera, slot in self._refill.items():
            slot.put(make_frame(0.0, camera=camera, index=len(self.batches)))
        if self._delay_s:
            time.sleep(self._delay_s)
        if len(self.batches) <= self._fail_calls:
            raise RuntimeError("model exploded")
        return [Detections(frame, (make_detection(),)) for frame in frames]

    def inferred(self) -> Counter[str]:
        return Counter(frame.camera for batch in self.batches for frame in batch)


class Results:
    """The on_detections / on_tick side: collects, optionally failing for some cameras."""

    def __init__(self, fail_for: frozenset[str] = frozenset()) -> None:
        self.detections: list[Detections] = []
        self.ticks = 0
        self._fail_for = fail_for

    def on_detections(self, detections: Detections) -> None:
        if detections.frame.camera in self._fail_for:
            raise ValueError(f"bad frame from {detections.frame.camera}")
        self.detections.append(detections)

    def on_tick(self) -> None:
        self.ticks += 1

    def cameras(self) -> Counter[str]:
        return Counter(d.frame.camera for d in self.detections)


class Rig:
    """One worker with its slots, shared wake event, fake detector and result collector."""

    def __init__(self, cameras: Sequence[str], detector: FakeDetector | None = None, *,
                 results: Results | None = None,
                 max_batch: int = 8, tick_interval_s: float = 0.5,
                 error_backoff_s: float = 1.0) -> None:
        self.wake = threading.Event()
        self.slots = {name: LatestFrame(on_put=self.wake.set) for name in cameras}
        self.detector = detector or FakeDetector()
        self.results = results or Results()
        self.worker = InferenceWorker(
            self.detector, self.slots, self.results.on_detections,
            self.results.on_tick, self.wake, max_batch=max_batch,
            tick_interval_s=tick_interval_s, error_backoff_s=error_backoff_s,
        )

    def put(self, camera: str, index: int = 0) -> Frame:
        frame = make_frame(index / 10, camera=camera, index=index)
        self.slots[camera].put(frame)
        return frame


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    """Makes rigs; every worker still running at the end of the test is stopped."""
    made: list[Rig] = []

    def make(*args: Any, **kwargs: Any) -> Rig:
        made.append(Rig(*args, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.worker.stop(STOP_TIMEOUT_S)


class Feeder:
    """A capture side that puts a new frame into each slot every ``period_s`` until closed."""

    def __init__(self, target: Rig, cameras: Sequence[str], period_s: float = 0.005) -> None:
        self._rig, self._cameras, self._period_s = target, cameras, period_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = 0
        while not self._done.wait(self._period_s):
            index += 1
            for camera in self._cameras:
                self._rig.put(camera, index)

    def close(self) -> None:
        self._done.set()
        self._thread.join(STOP_TIMEOUT_S)


# --- batching and routing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cameras", "max_batch", "batch_sizes"),
    [
        (3, 8, [3]),
        (5, 2, [2, 2, 1]),
        (4, 4, [4]),
        (4, 1, [1, 1, 1, 1]),
    ],
)
def test_pending_frames_of_several_cameras_are_batched(
    rig: Callable[..., Rig], cameras: int, max_batch: int, batch_sizes: list[int]
) -> None:
    names = [f"cam{i}" for i in range(cameras)]
    r = rig(names, max_batch=max_batch)
    put = {name: r.put(name, index=i) for i, name in enumerate(names)}
    r.worker.start()

    assert wait_until(lambda: len(r.results.detections) == cameras)
    assert [len(batch) for batch in r.detector.batches] == batch_sizes
    # Each result reaches on_detections with its own frame (the very object the camera put).
    assert sorted(d.frame.camera for d in r.results.detections) == names
    for detections in r.results.detections:
        assert detections.frame is put[detections.frame.camera]
    stats = r.worker.stats()
    assert (stats.batches, stats.frames_inferred, stats.errors) == (len(batch_sizes), cameras, 0)


def test_only_the_newest_frame_of_a_camera_is_inferred(rig: Callable[..., Rig]) -> None:
    r = rig(["cam1"])
    for index in range(5):
        newest = r.put("cam1", index)
    r.worker.start()

    assert wait_until(lambda: len(r.results.detections) == 1)
    assert r.results.detections[0].frame is newest
    assert r.slots["cam1"].dropped == 4


def test_every_camera_is_served_when_the_detector_cannot_keep_up(rig: Callable[..., Rig]) -> None:
    names = ["cam1", "cam2", "cam3"]
    wake_slots: dict[str, LatestFrame] = {}
    # Every camera always has a new frame, and each batch (0.05 s) outlasts the interval (0.02 s).
    detector = FakeDetector(delay_s=0.05, refill=wake_slots)
    r = rig(names, detector, max_batch=2)
    wake_slots.update(r.slots)
    for name in names:
        r.put(name)
    r.worker.start()

    assert wait_until(lambda: len(detector.batches) >= 12, timeout_s=15.0)
    assert r.worker.stop(STOP_TIMEOUT_S)
    assert set(detector.inferred()) == set(names), dict(detector.inferred())


# --- ticks ----------------------------------------------------------------------------------


def test_on_tick_runs_periodically_without_frames(rig: Callable[..., Rig]) -> None:
    r = rig(["cam1", "cam2"], tick_interval_s=0.05)
    r.worker.start()
    time.sleep(0.6)
    assert r.worker.stop(STOP_TIMEOUT_S)

    assert 4 <= r.results.ticks <= 30  # ~12 expected
    assert r.detector.batches == []


def test_on_tick_keeps_running_while_frames_flow(rig: Callable[..., Rig]) -> None:
    r = rig(["cam1"], tick_interval_s=0.05)
    feeder = Feeder(r, ["cam1"])
    r.worker.start()
    time.sleep(0.6)
    assert r.worker.stop(STOP_TIMEOUT_S)
    feeder.close()

    assert r.results.ticks >= 4
    assert len(r.results.detections) >= 5


# --- failures -------------------------------------------------------------------------------


def test_a_failing_detector_is_logged_and_retried_after_the_backoff(
    rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=WORKER_LOGGER)
    r = rig(["cam1"], FakeDetector(fail_calls=2), error_backoff_s=0.3)
    feeder = Feeder(r, ["cam1"], period_s=0.01)
    r.worker.start()
    assert wait_until(lambda: len(r.results.detections) >= 3)
    feeder.close()

    calls = r.detector.call_times
    # Each retry waits the backoff (a lower bound: the wait never ends early but may end late).
    assert calls[1] - calls[0] >= 0.3 * 0.95
    assert calls[2] - calls[1] >= 0.3 * 0.95
    assert r.worker.is_alive()
    assert r.worker.stats().errors == 2
    failures = [rec for rec in caplog.records
                if rec.name == WORKER_LOGGER and "detector failed" in rec.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None and "model exploded" in str(failures[0].exc_info[1])


def test_stop_interrupts_the_error_backoff(rig: Callable[..., Rig]) -> None:
    r = rig(["cam1"], FakeDetector(fail_calls=1), error_backoff_s=60.0)
    r.put("cam1")
    r.worker.start()
    assert wait_until(lambda: r.worker.stats().errors == 1)

    started = time.monotonic()
    assert r.worker.stop(STOP_TIMEOUT_S)
    assert time.monotonic() - started < STOP_TIMEOUT_S


def test_a_failing_camera_callback_does_not_stop_the_others(
    rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=WORKER_LOGGER)
    names = ["cam1", "bad", "cam3"]
    r = rig(names, results=Results(fail_for=frozenset({"bad"})))
    for name in names:
        r.put(name, 1)
    r.worker.start()
    assert wait_until(lambda: len(r.results.detections) == 2)
    # The worker goes on: later frames of every camera are still inferred and routed.
    for name in names:
        r.put(name, 2)
    assert wait_until(lambda: len(r.results.detections) == 4)

    assert r.results.cameras() == Counter({"cam1": 2, "cam3": 2})
    assert r.detector.inferred() == Counter({"cam1": 2, "bad": 2, "cam3": 2})
    assert r.worker.is_alive()
    assert r.worker.stats().errors == 2
    assert any("processing failed" in rec.getMessage() and rec.exc_info
               for rec in caplog.records if rec.name == WORKER_LOGGER)


def test_a_failing_tick_is_counted_and_ticks_go_on(rig: Callable[..., Rig]) -> None:
    class FailingTicks(Results):
        def on_tick(self) -> None:
            super().on_tick()
            raise RuntimeError("tick failed")

    r = rig(["cam1"], results=FailingTicks(), tick_interval_s=0.05)
    r.worker.start()
    assert wait_until(lambda: r.results.ticks >= 3)
    assert r.worker.is_alive()
    assert r.worker.stats().errors >= 3


# --- stop -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "tick_interval_s"),
    [
        ("idle, waiting for a tick far away", 60.0),
        ("busy, frames flowing", 0.5),
    ],
)
def test_stop_returns_promptly_and_the_thread_ends(
    rig: Callable[..., Rig], scenario: str, tick_interval_s: float
) -> None:
    r = rig(["cam1", "cam2"], tick_interval_s=tick_interval_s)
    feeder = Feeder(r, ["cam1", "cam2"]) if scenario.startswith("busy") else None
    r.worker.start()
    assert wait_until(lambda: r.results.ticks >= 1)
    if feeder:
        assert wait_until(lambda: len(r.results.detections) >= 10)

    started = time.monotonic()
    assert r.worker.stop(STOP_TIMEOUT_S) is True
    assert time.monotonic() - started < 2.0  # far below the 60 s it would wait undisturbed
    assert not r.worker.is_alive()
    if feeder:
        feeder.close()
    batches = r.worker.stats().batches
    time.sleep(0.1)
    assert r.worker.stats().batches == batches  # nothing runs after stop


def test_stop_before_start_is_harmless(rig: Callable[..., Rig]) -> None:
    r = rig(["cam1"])
    assert r.worker.stop(0.1) is True
    assert not r.worker.is_alive()
