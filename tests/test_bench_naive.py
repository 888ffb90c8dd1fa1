"""The reference measurements of ``monitor bench``: the naive loop and the limits.

Pure helpers are checked with tables; the real runs use the real model on vtest.avi (slow).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.bench.limits import (
    LimitsError,
    decode_limit,
    fit_image,
    inference_limit,
    paced_inference,
    sample_images,
    synthetic_image,
)
from monitor.bench.naive import (
    NaiveRun,
    _Camera,
    _loop,
    _Settings,
    _Window,
    NaiveRunError,
    TimelinePoint,
    decimate,
    frames_arrived,
    machine_busy_s,
    percentile,
    run_naive,
    summarise,
)
from monitor.config import DetectorConfig
from tests.fixtures.rtsp import FOOTAGE_CAPS, RtspServer

MODEL = DetectorConfig().model
NAIVE_SECONDS = 6.0
FOOTAGE_FPS = 10.0
STREAM_SECONDS = 10.0
LOSE_AT_FRACTION = 0.4  # the server stops this far into the window
FAST_IMGSZ = 192

# --- pure helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([3.0], 50, 3.0),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # any order
        ([0.0, 10.0], 95, 9.5),
        (list(range(101)), 95, 95.0),
    ],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


@pytest.mark.parametrize(("values", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_rejects(values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, q)


@pytest.mark.parametrize(
    ("length", "max_points", "expected_length"),
    [(0, 5, 0), (3, 5, 3), (5, 5, 5), (6, 5, 5), (1000, 300, 300), (301, 300, 300)],
)
def test_decimate_keeps_first_last_and_order(length: int, max_points: int,
                                             expected_length: int) -> None:
    items = list(range(length))
    kept = decimate(items, max_points)
    assert len(kept) == expected_length
    assert kept == sorted(set(kept))
    if items:
        assert (kept[0], kept[-1]) == (items[0], items[-1])


def test_decimate_spreads_evenly() -> None:
    kept = decimate(list(range(1000)), 11)
    gaps = {b - a for a, b in zip(kept, kept[1:])}
    assert max(gaps) - min(gaps) <= 1, kept


def test_decimate_rejects_fewer_than_two_points() -> None:
    with pytest.raises(ValueError):
        decimate([1, 2, 3], 1)


@pytest.mark.parametrize(
    ("origin", "fps", "end", "expected"),
    [
        (0.0, 10.0, 0.0, 1),     # frame 0 arrives at the origin
        (0.0, 10.0, 0.05, 1),
        (0.0, 10.0, 0.1, 2),     # exactly on an arrival counts
        (0.0, 10.0, 6.0, 61),
        (5.0, 10.0, 4.0, 0),     # before the origin: nothing yet
        (100.0, 25.0, 101.0, 26),
    ],
)
def test_frames_arrived(origin: float, fps: float, end: float, expected: int) -> None:
    assert frames_arrived(origin, fps, end) == expected


def points(*pairs: tuple[float, float]) -> list[TimelinePoint]:
    return [TimelinePoint(elapsed, "cam1", latency) for elapsed, latency in pairs]


def test_summarise_reports_the_last_part_of_the_window() -> None:
    samples = points((1.0, 0.5), (3.0, 1.0), (5.0, 2.0), (9.2, 4.0), (9.6, 5.0))

    counts = summarise("cam1", 10.0, 100, samples, window_s=10.0, last_fraction=0.1)

    assert (counts.camera, counts.fps, counts.frames_arrived, counts.frames_processed) == (
        "cam1", 10.0, 100, 5)
    assert counts.latency_p50_s == pytest.approx(2.0)
    assert counts.latency_max_s == pytest.approx(5.0)
    assert counts.latency_p95_s == pytest.approx(np.percentile([0.5, 1, 2, 4, 5], 95))
    assert counts.latency_last_s == pytest.approx(4.5)  # median of the two after 9.0 s


def test_summarise_without_frames_has_no_latencies() -> None:
    counts = summarise("cam2", 10.0, 60, [], window_s=6.0, last_fraction=0.1)
    assert counts.frames_processed == 0
    assert (counts.latency_p50_s, counts.latency_p95_s, counts.latency_max_s,
            counts.latency_last_s) == (None, None, None, None)


def test_summarise_carries_when_the_stream_was_lost() -> None:
    points = [TimelinePoint(1.0, "cam1", 0.5)]
    assert summarise("cam1", 10.0, 50, points, 10.0, 0.1).stream_lost_at_s is None
    assert summarise("cam1", 10.0, 50, points, 10.0, 0.1, 4.5).stream_lost_at_s == 4.5


def test_summarise_with_nothing_in_the_last_part() -> None:
    counts = summarise("cam1", 10.0, 60, points((1.0, 0.3)), window_s=6.0, last_fraction=0.1)
    assert counts.latency_p50_s == pytest.approx(0.3)
    assert counts.latency_last_s is None


def test_machine_busy_s_reads_the_kernel_counters(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 0 50 1000 30 5 5 0 0 0\ncpu0 1 2 3 4\n")
    assert machine_busy_s(stat) == pytest.approx(160 / os.sysconf("SC_CLK_TCK"))


@pytest.mark.parametrize("content", [None, "", "cpu  x y z\n"])
def test_machine_busy_s_without_usable_counters(tmp_path: Path, content: str | None) -> None:
    stat = tmp_path / "stat"
    if content is not None:
        stat.write_text(content)
    assert machine_busy_s(stat) is None


def test_machine_busy_s_on_this_machine_grows() -> None:
    first = machine_busy_s()
    assert first is not None and first > 0
    sum(i * i for i in range(200_000))  # a little busy work
    second = machine_busy_s()
    assert second is not None and second >= first


@pytest.mark.parametrize(
    "kwargs",
    [
        {"video": None},
        {"video": Path("x.avi"), "source_url": "rtsp://127.0.0.1/x"},
        {"video": Path("x.avi"), "cameras": 0},
        {"video": Path("x.avi"), "seconds": 0.0},
        {"video": Path("x.avi"), "last_fraction": 0.0},
    ],
)
def test_run_naive_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"cameras": 1, "seconds": 1.0, **kwargs}
    with pytest.raises(ValueError):
        run_naive(model=MODEL, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("height", "width"), [(480, 640), (224, 640), (640, 640), (100, 50)])
def test_fit_image_covers_and_crops(height: int, width: int) -> None:
    image = np.zeros((576, 768, 3), dtype=np.uint8)
    image[:, 384:] = 255  # right half white: a centre crop keeps both halves

    fitted = fit_image(image, height, width)

    assert fitted.shape == (height, width, 3) and fitted.dtype == np.uint8
    assert fitted.flags["C_CONTIGUOUS"]
    assert fitted[:, 0].max() < 128 and fitted[:, -1].min() > 127


def test_synthetic_image_is_smooth_and_sized() -> None:
    image = synthetic_image(224, 640)
    assert image.shape == (224, 640, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100  # not a flat picture


# --- the real model on real footage ------------------------------------------------------------


@pytest.fixture(scope="module")
def naive_run(footage: Path) -> NaiveRun:
    """Two naive cameras on vtest for NAIVE_SECONDS (a model each, one torch thread each)."""
    seen: list[float] = []
    run = run_naive(footage, 2, NAIVE_SECONDS, model=MODEL, progress=seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    return run


@pytest.mark.slow
def test_naive_counts_are_consistent(naive_run: NaiveRun) -> None:
    assert [c.camera for c in naive_run.cameras] == ["cam1", "cam2"]
    assert naive_run.wall_s == pytest.approx(NAIVE_SECONDS, abs=0.5)
    for cam in naive_run.cameras:
        assert cam.fps == FOOTAGE_FPS
        assert cam.frames_arrived == pytest.approx(NAIVE_SECONDS * FOOTAGE_FPS, abs=2)
        assert 1 <= cam.frames_processed <= cam.frames_arrived + 1, cam
        assert cam.latency_p50_s is not None and cam.latency_p95_s is not None
        assert cam.latency_max_s is not None
        assert 0 <= cam.latency_p50_s <= cam.latency_p95_s <= cam.latency_max_s, cam


@pytest.mark.slow
def test_naive_resources_are_measured(naive_run: NaiveRun) -> None:
    assert naive_run.cpu_s > 0
    assert naive_run.peak_rss_mb > 100
    assert naive_run.machine_cpu_s is not None and naive_run.machine_cpu_s > 0
    assert Path(naive_run.model).is_file()


@pytest.mark.slow
def test_naive_timeline_is_sane_and_serialisable(naive_run: NaiveRun) -> None:
    timeline = naive_run.timeline
    assert timeline
    assert [p.elapsed_s for p in timeline] == sorted(p.elapsed_s for p in timeline)
    for point in timeline:
        assert 0 <= point.elapsed_s <= naive_run.wall_s + 1e-6
        assert point.latency_s >= 0
    for cam in naive_run.cameras:
        assert sum(p.camera == cam.camera for p in timeline) == min(cam.frames_processed, 300)
    decoded = json.loads(json.dumps(dataclasses.asdict(naive_run)))
    assert decoded["cameras"][0]["camera"] == "cam1"


@pytest.mark.slow
def test_naive_latency_grows_when_slower_than_the_cameras(naive_run: NaiveRun) -> None:
    # Two models on two cores manage ~2 fps per camera against 10 fps arriving: the backlog, and
    # so the latency, grows through the whole run.
    for cam in naive_run.cameras:
        assert cam.frames_processed < cam.frames_arrived / 2, cam
        first = [p.latency_s for p in naive_run.timeline if p.camera == cam.camera][:2]
        assert cam.latency_last_s is not None and cam.latency_last_s > max(first), (cam, first)


@pytest.mark.slow
@pytest.mark.integration
def test_naive_reads_a_stream(rtsp_server: RtspServer) -> None:
    run = run_naive(None, 1, 4.0, model=MODEL, source_url=rtsp_server.url("cam1"))

    (cam,) = run.cameras
    assert cam.fps == FOOTAGE_FPS
    assert 1 <= cam.frames_processed <= cam.frames_arrived + 1, cam
    assert cam.latency_p50_s is not None and cam.latency_p50_s >= 0
    assert all(p.latency_s >= 0 for p in run.timeline)


class _Stream:
    """A live capture that gives ``frames`` pictures, then fails (after ``stall_s``)."""

    def __init__(self, frames: int, stall_s: float = 0.0) -> None:
        self.left, self.stall_s = frames, stall_s

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.left == 0:
            time.sleep(self.stall_s)
            return False, None
        self.left -= 1
        return True, np.zeros((4, 4, 3), np.uint8)


class _InstantModel:
    def track(self, image: np.ndarray, **_: object) -> None:
        pass


def _stream_loop(stream: _Stream, seconds: float) -> _Camera:
    """One naive camera's loop on ``stream``, in this thread, for a window of ``seconds``."""
    camera = _Camera("cam1", _Settings("rtsp://cam.example/live", True, "m.pt", 640, 0.25))
    camera.fps = FOOTAGE_FPS
    window = _Window(1, seconds)
    window.ready(1.0)
    _loop(camera, _InstantModel(), stream, window)  # type: ignore[arg-type]
    return camera


def test_a_stream_lost_in_the_window_ends_the_loop_with_its_time() -> None:
    camera = _stream_loop(_Stream(5), seconds=10.0)
    assert len(camera.points) == 5
    assert camera.stream_lost_at_s is not None and 0 <= camera.stream_lost_at_s < 1.0


def test_a_stream_failing_only_after_the_window_was_not_lost_in_it() -> None:
    camera = _stream_loop(_Stream(2, stall_s=0.4), seconds=0.2)
    assert len(camera.points) == 2 and camera.stream_lost_at_s is None


def test_a_stream_that_never_gives_a_frame_is_an_error_not_a_result() -> None:
    with pytest.raises(NaiveRunError, match=r"^rtsp://cam\.example/live: no frame from the stream$"):
        _stream_loop(_Stream(0), seconds=10.0)


@pytest.mark.slow
@pytest.mark.integration
def test_naive_records_a_lost_stream_as_its_result(footage: Path, gst_python: str) -> None:
    server = RtspServer({"cam": footage}, caps=FOOTAGE_CAPS, python=gst_python)
    server.start()

    def stop_part_way(fraction: float) -> None:  # progress runs in the calling thread
        if fraction >= LOSE_AT_FRACTION:
            server.stop()

    try:
        # A small input keeps the loop ahead of the stream even on a loaded machine, so it
        # notices the loss soon after the server stops, not after working through a backlog.
        run = run_naive(None, 1, STREAM_SECONDS, model=MODEL, imgsz=FAST_IMGSZ,
                        source_url=server.url("cam"), progress=stop_part_way,
                        progress_interval_s=0.2)
    finally:
        server.close()

    (cam,) = run.cameras
    assert cam.stream_lost_at_s is not None, cam
    assert LOSE_AT_FRACTION * STREAM_SECONDS <= cam.stream_lost_at_s < STREAM_SECONDS, cam
    assert cam.frames_processed >= 1 and cam.latency_p50_s is not None, cam
    assert all(p.elapsed_s <= cam.stream_lost_at_s for p in run.timeline)
    # Frames stopped arriving with the stream; the window itself ran to its end.
    assert cam.frames_arrived <= cam.stream_lost_at_s * FOOTAGE_FPS + 2, cam
    assert run.wall_s == pytest.approx(STREAM_SECONDS, abs=0.5)


def test_naive_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NaiveRunError, match=r"missing\.avi: no such file"):
        run_naive(tmp_path / "missing.avi", 1, 1.0, model=MODEL)


@pytest.mark.slow
def test_naive_names_the_camera_that_cannot_open(tmp_path: Path) -> None:
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(NaiveRunError, match=r"^cam1: cannot open .*junk\.avi"):
        run_naive(junk, 1, 1.0, model=MODEL)


@pytest.mark.slow
def test_decode_limit(footage: Path) -> None:
    limit = decode_limit(footage, 50)
    assert (limit.frames, limit.width, limit.height) == (50, 768, 576)
    assert limit.cpu_ms_per_frame > 0
    assert limit.fps > 0


@pytest.mark.slow
@pytest.mark.integration
def test_decode_limit_reads_a_stream_at_its_pace(rtsp_server: RtspServer) -> None:
    limit = decode_limit(rtsp_server.url("cam1"), 20)
    assert (limit.frames, limit.width, limit.height) == (20, 768, 576)
    assert limit.cpu_ms_per_frame > 0
    assert limit.fps < 2 * FOOTAGE_FPS  # paced by the stream, not by the decoder


def test_decode_limit_names_a_stream_it_cannot_open() -> None:
    with pytest.raises(LimitsError, match=r"^rtsp://user:\*\*\*@127\.0\.0\.1:9/none: cannot be opened"):
        decode_limit("rtsp://user:secret@127.0.0.1:9/none", 5)


@pytest.mark.slow
def test_paced_inference_draws_the_daemons_mix(footage: Path) -> None:
    from monitor.detect.yolo import YoloDetector

    detector = YoloDetector(DetectorConfig())
    detector.warm_up()
    mix = [((1, 224, 640), 3), ((1, 320, 640), 1)]

    paced = paced_inference(detector, mix, 8, 0.01, images=sample_images(footage, 2))

    assert (paced.calls, paced.gap_ms) == (8, 10.0)
    assert paced.wall_ms > 0 and paced.cpu_ms > 0
    assert paced.back_to_back_wall_ms > 0 and paced.back_to_back_cpu_ms > 0
    # The same calls, so the same order of cost (a 320-high call costs ~1.4x a 224-high one).
    assert 0.5 < paced.wall_ms / paced.back_to_back_wall_ms < 3.0


@pytest.mark.parametrize(("calls", "gap_s", "mix"), [
    (0, 0.0, [((1, 224, 640), 1)]), (1, -1.0, [((1, 224, 640), 1)]), (1, 0.0, []),
    (1, 0.0, [((1, 224, 640), 0)]),
])
def test_paced_inference_rejects(calls: int, gap_s: float, mix: list) -> None:
    with pytest.raises(ValueError, match="out of range"):
        paced_inference(object(), mix, calls, gap_s)  # type: ignore[arg-type]


@pytest.mark.slow
def test_inference_limit(footage: Path) -> None:
    from monitor.detect.yolo import YoloDetector

    detector = YoloDetector(DetectorConfig())
    detector.warm_up()
    shapes = [(1, 480, 640), (2, 224, 640)]

    limit = inference_limit(detector, shapes, repeats=2, images=sample_images(footage, 4))

    assert limit.real_images and limit.torch_threads == DetectorConfig().threads
    assert [(r.batch, r.height, r.width) for r in limit.rows] == shapes
    for row in limit.rows:
        assert row.repeats == 2
        assert row.wall_ms > 0 and row.cpu_ms > 0
        assert row.wall_ms_per_image == pytest.approx(row.wall_ms / row.batch)
