"""The ByteTrack adapter: persistent ids per camera, never shared between cameras."""

from __future__ import annotations

from monitor.config import TrackerConfig
from monitor.track.bytetrack import ByteTracker
from tests.builders import make_detection, make_detections


def walk(tracker: ByteTracker, camera: str, steps: int, start_x: float = 10) -> list[list[int]]:
    ids = []
    for step in range(steps):
        x = start_x + step * 2
        tracks = tracker.update(
            make_detections(step * 0.2, make_detection((x, 10, x + 20, 60), 0.9), camera=camera)
        )
        ids.append([t.track_id for t in tracks.items])
    return ids


def test_a_moving_object_keeps_its_id() -> None:
    tracker = ByteTracker("cam1", TrackerConfig(), detect_fps=5)
    ids = walk(tracker, "cam1", 10)
    seen = {i for frame in ids for i in frame}
    assert len(seen) == 1
    assert sum(len(frame) for frame in ids) >= 9  # first frame may only create the track


def test_two_cameras_have_independent_id_sequences() -> None:
    first = ByteTracker("cam1", TrackerConfig(), detect_fps=5)
    walk(first, "cam1", 5)
    second = ByteTracker("cam2", TrackerConfig(), detect_fps=5)
    ids_second = walk(second, "cam2", 5)
    ids_first = walk(first, "cam1", 5, start_x=20)  # same object continues on cam1
    # Each camera numbers its own tracks from 1; making a tracker does not reset another's ids.
    assert {i for f in ids_second for i in f} == {1}
    assert {i for f in ids_first for i in f} == {1}


def test_tracks_carry_the_original_detection() -> None:
    tracker = ByteTracker("cam1", TrackerConfig(), detect_fps=5)
    result = None
    for step in range(3):
        fall = make_detection((10, 40, 60, 60), 0.8, class_name="Fall")
        walker = make_detection((70, 10, 90, 60), 0.7, class_name="Normal")
        result = tracker.update(make_detections(step * 0.2, fall, walker))
    assert result is not None
    classes = sorted(t.detection.class_name for t in result.items)
    assert classes == ["Fall", "Normal"]
    assert all(t.camera == "cam1" for t in result.items)


def test_empty_frames() -> None:
    tracker = ByteTracker("cam1", TrackerConfig(), detect_fps=5)
    assert tracker.update(make_detections(0.0)).items == ()
