"""Event clips, stage by stage: the frame ring (bounded by time and memory), the sampler, when a
clip is due, the MP4 encoder (read back by OpenCV), and the clip thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.clips.buffer import ClipFrame, ClipSampler, FrameRing, clip_size
from monitor.clips.encode import ClipEncodeError, encode_clip, frame_slots, require_h264_encoder
from monitor.clips.schedule import ClipSchedule
from monitor.clips.writer import ClipWriter, WrittenClip, clip_path
from monitor.config import ClipsConfig
from monitor.types import Alert, AlertType, Box, EndReason, Event, EventKind
from tests.builders import EPOCH
from tests.support.mp4 import probe, top_level_boxes


def at(t: float) -> datetime:
    return EPOCH + timedelta(seconds=t)


def clip_frame(t: float, size_bytes: int = 1000) -> ClipFrame:
    return ClipFrame(b"x" * size_bytes, at(t), t)


def picture(number: int, width: int = 320, height: int = 240) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    cv2.putText(image, str(number), (20, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 2,
                (255, 255, 255), 3)
    return image


def jpeg_frame(t: float, number: int) -> ClipFrame:
    return ClipFrame(cv2.imencode(".jpg", picture(number))[1].tobytes(), at(t), t)


def make_event(start: float = 10.0, end: float | None = None, *, event_id: str = "e1",
               camera: str = "cam1", announced: bool = True) -> Event:
    return Event(
        id=event_id, camera=camera, kind=EventKind.PRESENCE, label="person", track_id=1,
        start_time=at(start), end_time=None if end is None else at(end), score=0.9,
        box=Box(0, 0, 10, 10), announced=announced,
        end_reason=None if end is None else EndReason.UNSEEN,
    )


def alert(kind: AlertType, event: Event) -> Alert:
    return Alert(kind, event)


# --- the ring --------------------------------------------------------------------------------

def test_the_ring_keeps_keep_s_of_footage() -> None:
    ring = FrameRing(keep_s=2.0, max_bytes=10**9)
    for tick in range(50):
        ring.append(clip_frame(tick * 0.2))
    kept = ring.between(at(0), at(100))
    assert [f.monotonic for f in kept][0] == pytest.approx(7.8)  # 9.8 - 2.0
    assert len(kept) == 11 and ring.stats().bytes == 11_000


def test_memory_bounds_the_ring_whatever_holds_it() -> None:
    ring = FrameRing(keep_s=60.0, max_bytes=5_500)
    ring.hold("e1", at(0))
    for tick in range(20):
        ring.append(clip_frame(tick))
    stats = ring.stats()
    assert stats.frames == 5 and stats.bytes == 5_000
    assert stats.evicted_for_memory == 15  # all wanted (young and held), dropped all the same
    assert [f.monotonic for f in ring.between(at(0), at(100))] == [15, 16, 17, 18, 19]


def test_a_hold_keeps_frames_past_keep_s_until_released() -> None:
    ring = FrameRing(keep_s=1.0, max_bytes=10**9)
    ring.hold("e1", at(3))
    for tick in range(11):
        ring.append(clip_frame(tick))
    assert [f.monotonic for f in ring.between(at(0), at(100))] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert [f.monotonic for f in ring.between(at(4), at(6))] == [4, 5, 6]
    ring.release("e1")
    ring.append(clip_frame(11))
    assert [f.monotonic for f in ring.between(at(0), at(100))] == [10, 11]


@pytest.mark.parametrize(
    ("size", "max_width", "expected"),
    [((768, 576), 640, (640, 480)), ((640, 480), 640, (640, 480)), ((321, 241), 640, (320, 240)),
     ((1920, 1080), 640, (640, 360)), ((1000, 333), 500, (500, 166))],
)
def test_clip_sizes_are_even_and_at_most_max_width(
    size: tuple[int, int], max_width: int, expected: tuple[int, int]
) -> None:
    assert clip_size(*size, max_width) == expected


def test_the_sampler_takes_the_clip_rate_scaled_down() -> None:
    ring = FrameRing(keep_s=100.0, max_bytes=10**9)
    sampler = ClipSampler(ring, fps=5.0, max_width_px=200, jpeg_quality=80)
    for index in range(100):  # 10 s of a 10 fps camera
        sampler.offer(picture(index), index / 10, at(index / 10))
    frames = ring.between(at(0), at(100))
    assert len(frames) == 50
    assert [f.monotonic for f in frames[:3]] == [0.0, 0.2, 0.4]
    image = cv2.imdecode(np.frombuffer(frames[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (150, 200, 3)


def test_the_sampler_never_raises_into_the_capture_thread() -> None:
    ring = FrameRing(keep_s=100.0, max_bytes=10**9)
    sampler = ClipSampler(ring, fps=5.0, max_width_px=640, jpeg_quality=80)
    sampler.offer(np.zeros((0, 0, 3), np.uint8), 0.0, at(0))  # cv2 refuses an empty picture
    sampler.offer(picture(1), 1.0, at(1))
    assert ring.stats().frames == 1


# --- when a clip is due ----------------------------------------------------------------------

def test_a_clip_is_due_post_roll_after_the_end() -> None:
    schedule = ClipSchedule(pre_roll_s=5, post_roll_s=5, max_length_s=120, capacity=4)
    start = alert(AlertType.START, make_event(10))
    assert schedule.opens(start)
    window = schedule.open(start.event)
    assert window is not None and window.start == at(5)
    schedule.update(make_event(10, 20))
    assert schedule.due(at(24.9)) == []
    (due,) = schedule.due(at(25))
    assert (due.start, due.end, due.event.end_time) == (at(5), at(25), at(20))
    assert len(schedule) == 0


def test_a_long_event_is_cut_at_max_length_while_still_open() -> None:
    schedule = ClipSchedule(pre_roll_s=5, post_roll_s=5, max_length_s=30, capacity=4)
    schedule.open(make_event(10))
    (due,) = schedule.due(at(35))
    assert (due.start, due.end, due.event.end_time) == (at(5), at(35), None)
    schedule.update(make_event(10, 100))  # its end, later: the clip was written already
    assert schedule.due(at(1000)) == []


@pytest.mark.parametrize(
    ("first", "opens"),
    [(alert(AlertType.START, make_event()), True),
     (alert(AlertType.UPDATE, make_event()), False),
     (alert(AlertType.END, make_event(10, 12)), False),
     (alert(AlertType.START, make_event(announced=False)), False)],
)
def test_only_an_announced_start_opens_a_clip(first: Alert, opens: bool) -> None:
    assert ClipSchedule(5, 5, 120, 4).opens(first) is opens


def test_a_full_schedule_refuses_new_clips() -> None:
    schedule = ClipSchedule(5, 5, 120, capacity=1)
    assert schedule.open(make_event(event_id="a")) is not None
    assert schedule.open(make_event(event_id="b")) is None


def test_at_stop_every_clip_ends_at_the_stop_at_the_latest() -> None:
    schedule = ClipSchedule(5, 5, 120, capacity=4)
    schedule.open(make_event(10, event_id="open"))
    schedule.open(make_event(10, event_id="ended"))
    schedule.update(make_event(10, 11, event_id="ended"))
    windows = schedule.take_all(at(14))
    assert [(w.event.id, w.end) for w in windows] == [("ended", at(14)), ("open", at(14))]


# --- encoding --------------------------------------------------------------------------------

def test_frame_slots_fill_gaps_with_the_picture_before() -> None:
    frames = [clip_frame(t) for t in (0.0, 0.21, 0.39, 1.0)]
    assert frame_slots(frames, fps=5.0, end=at(100)) == [0, 1, 2, 2, 2, 3]
    assert frame_slots(frames, fps=5.0, end=at(0.5)) == [0, 1]


def test_the_clip_is_browser_ready_h264(tmp_path: Path) -> None:
    require_h264_encoder()
    frames = [jpeg_frame(i * 0.2, i) for i in range(25)]
    path = tmp_path / "cam1" / "2026-01-01" / "e1.mp4"
    clip = encode_clip(frames, path, fps=5.0, end=at(100), crf=28)
    assert clip.path == path and clip.frames == 25 and clip.duration_s == pytest.approx(5.0)
    assert clip.size_bytes == path.stat().st_size > 0
    assert list(path.parent.iterdir()) == [path]  # the temporary file was renamed
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    probed = probe(path)
    assert (probed.codec, probed.pix_fmt, probed.width, probed.height) == ("h264", "yuv420p", 320, 240)
    assert probed.duration_s == pytest.approx(5.0, abs=0.01)
    assert probed.frames_decoded == probed.frames_declared == 25


def test_no_frames_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ClipEncodeError, match="no buffered frames"):
        encode_clip([], tmp_path / "e1.mp4", fps=5.0, end=at(1), crf=28)
    bad = [ClipFrame(b"not a jpeg", at(0), 0.0)]
    with pytest.raises(ClipEncodeError, match="not a decodable JPEG"):
        encode_clip(bad, tmp_path / "e2.mp4", fps=5.0, end=at(1), crf=28)
    assert list(tmp_path.iterdir()) == []


# --- the clip thread -------------------------------------------------------------------------

class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return at(self.t)


def recording_writer(config: ClipsConfig, root: Path
                     ) -> tuple[ClipWriter, FakeClock, list[WrittenClip], threading.Event]:
    """A writer on a clock the test moves, with the clips it writes and an event set at each."""
    clock = FakeClock(0)
    written: list[WrittenClip] = []
    done = threading.Event()

    def record(clip: WrittenClip) -> None:
        written.append(clip)
        done.set()

    return ClipWriter(config, root, record, now=clock), clock, written, done


def test_the_writer_writes_an_ended_event_once_its_post_roll_is_filmed(tmp_path: Path) -> None:
    config = ClipsConfig(pre_roll_s=2, post_roll_s=1, fps=5, max_width_px=320)
    writer, clock, written, done = recording_writer(config, tmp_path)
    sampler = writer.add_camera("cam1", keep_s=2.0)
    writer.start()
    try:
        for index in range(30):  # 3 s at 10 fps; the event is 1.0..1.6 s
            clock.t = index / 10
            sampler.offer(picture(index), clock.t, at(clock.t))
            if index == 12:
                writer.observe(alert(AlertType.START, make_event(1.0)))
            if index == 18:
                writer.observe(alert(AlertType.END, make_event(1.0, 1.6)))
        assert not done.is_set()  # the post-roll ends at 2.6 s; the clock says 2.9 s
        clock.t = 2.9
        assert done.wait(5.0)
    finally:
        assert writer.stop(5.0)
    (clip,) = written
    assert clip.clip.path == clip_path(tmp_path, clip.event)
    assert clip.event.end_time == at(1.6)
    # From 0.0 (pre-roll 2 s before 1.0, as far back as the footage goes) to 2.6 s.
    assert clip.clip.starts_at == at(0.0)
    assert clip.clip.duration_s == pytest.approx(2.6, abs=0.2 + 1e-9)
    stats = writer.stats()
    assert (stats.written, stats.failed, stats.dropped, stats.pending) == (1, 0, 0, 0)
    assert stats.bytes_written == clip.clip.size_bytes


def test_at_stop_pending_clips_are_written_with_what_exists(tmp_path: Path) -> None:
    config = ClipsConfig(pre_roll_s=1, post_roll_s=5, fps=5, max_width_px=320, queue_size=1)
    clock = FakeClock(0)
    written: list[WrittenClip] = []
    writer = ClipWriter(config, tmp_path, written.append, now=clock)
    sampler = writer.add_camera("cam1", keep_s=1.0)
    writer.start()
    for index in range(20):
        clock.t = index / 10
        sampler.offer(picture(index), clock.t, at(clock.t))
    writer.observe(alert(AlertType.START, make_event(1.5, event_id="a")))
    writer.observe(alert(AlertType.START, make_event(1.5, event_id="b")))  # over queue_size
    writer.observe(alert(AlertType.END, make_event(1.5, 1.9, event_id="a")))
    assert writer.stop(5.0)
    (clip,) = written
    # The pre-roll would begin at 0.5 s, but the ring kept 1 s before the START: from 0.8 s;
    # it ends at the stop (1.9 s), not 5 s later.
    assert clip.event.id == "a" and clip.clip.starts_at == at(0.8)
    assert clip.clip.duration_s == pytest.approx(1.1, abs=0.2 + 1e-9)
    assert (writer.stats().written, writer.stats().dropped) == (1, 1)


def test_clip_paths_are_dated_by_the_event_start_in_utc(tmp_path: Path) -> None:
    event = make_event()
    late = Event(**{**{f: getattr(event, f) for f in event.__slots__},  # type: ignore[arg-type]
                    "start_time": datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)})
    assert clip_path(tmp_path, late) == tmp_path / "cam1" / "2026-03-01" / "e1.mp4"


def test_the_ring_keeps_the_pre_roll_plus_the_longest_start_delay() -> None:
    from monitor.clips.writer import ring_keep_s
    from monitor.config import CameraConfig

    config = ClipsConfig(pre_roll_s=5, max_length_s=60)
    plain = CameraConfig(name="a", url="rtsp://h/a", detect_fps=3.0)
    assert ring_keep_s(config, confirm_frames=3, camera=plain) == pytest.approx(6.0)
    crowded = CameraConfig.model_validate({
        "name": "a", "url": "rtsp://h/a", "detect_fps": 3.0,
        "zones": [{"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]],
                   "crowd": {"min_objects": 2, "for_s": 20.0}}]})
    assert ring_keep_s(config, confirm_frames=3, camera=crowded) == pytest.approx(25.0)
    long_crowd = crowded.model_copy(update={"zones": [crowded.zones[0].model_copy(
        update={"crowd": crowded.zones[0].crowd.model_copy(update={"for_s": 600.0})})]})
    assert ring_keep_s(config, confirm_frames=3, camera=long_crowd) == 60.0  # max_length_s


def test_the_observer_passes_the_alert_on_before_the_clip_writer_sees_it(tmp_path: Path) -> None:
    from monitor.clips.writer import ClipObserver

    seen: list[str] = []

    class Sink:
        def emit(self, alert: Alert) -> None:
            seen.append(f"store {alert.type.value}")

    writer = ClipWriter(ClipsConfig(), tmp_path, lambda clip: None)
    writer.add_camera("cam1", keep_s=5.0)
    ClipObserver(Sink(), writer).emit(alert(AlertType.START, make_event()))
    assert seen == ["store start"] and writer.stats().pending == 1


def test_a_removed_cameras_ring_goes_once_its_pending_clip_is_written(tmp_path: Path) -> None:
    config = ClipsConfig(pre_roll_s=1, post_roll_s=0.5, fps=5, max_width_px=320)
    writer, clock, written, done = recording_writer(config, tmp_path)
    busy = writer.add_camera("cam1", keep_s=1.0)
    idle = writer.add_camera("cam2", keep_s=1.0)
    for index in range(10):
        clock.t = index / 10
        busy.offer(picture(index), clock.t, at(clock.t))
        idle.offer(picture(index), clock.t, at(clock.t))
    writer.observe(alert(AlertType.START, make_event(0.5)))
    writer.start()
    try:
        writer.retire_camera("cam2")  # nothing pending: its ring goes at once
        writer.retire_camera("cam1")  # its event's clip is still to come
        assert set(writer.stats().buffered_bytes) == {"cam1"}
        writer.observe(alert(AlertType.END, make_event(0.5, 0.9)))  # as the pipeline's close
        clock.t = 1.5
        assert done.wait(5.0)
    finally:
        assert writer.stop(5.0)
    (clip,) = written
    assert clip.clip.frames > 0  # made from the removed camera's footage
    assert writer.stats().buffered_bytes == {}  # and then its ring went, metrics with it


def test_a_clip_keeps_its_footage_when_a_frame_arrives_as_its_hold_is_released(
        tmp_path: Path) -> None:
    """The capture thread's next append prunes what no hold keeps: the clip must have read its
    frames before its hold goes, not after."""
    config = ClipsConfig(pre_roll_s=1, post_roll_s=0.5, fps=5, max_width_px=320)
    writer, clock, written, done = recording_writer(config, tmp_path)
    sampler = writer.add_camera("cam1", keep_s=0.5)
    writer.observe(alert(AlertType.START, make_event(1.0)))  # holds from 0.0 s
    for index in range(30):  # 3 s at 10 fps
        clock.t = index / 10
        sampler.offer(picture(index), clock.t, at(clock.t))
    writer.observe(alert(AlertType.END, make_event(1.0, 2.0)))  # the clip is 0.0..2.5 s
    ring = sampler.ring
    release = ring.release

    def release_then_a_frame_arrives(key: str) -> None:
        release(key)
        ring.append(ClipFrame(b"late", at(3.0), 3.0))  # drops all but the last 0.5 s

    ring.release = release_then_a_frame_arrives  # type: ignore[method-assign]
    clock.t = 3.0
    writer.start()
    try:
        assert done.wait(5.0)
    finally:
        assert writer.stop(5.0)
    (clip,) = written
    assert clip.clip.starts_at == at(0.0)
    assert clip.clip.duration_s == pytest.approx(2.5, abs=0.2 + 1e-9)
