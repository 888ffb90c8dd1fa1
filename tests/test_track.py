"""The ByteTrack adapter: persistent ids per camera, never shared between cameras."""

from __future__ import annotations

import pytest

from monitor.config import TrackerConfig
from monitor.track.bytetrack import ByteTracker
from monitor.types import Detection
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


def run_frames(tracker: ByteTracker, boxes: list[tuple[float, tuple[float, float, float, float] | None]],
               score: float = 0.7) -> list[int | None]:
    """Feed one box (or none) per frame at the given times; the id seen in each frame."""
    ids: list[int | None] = []
    for t, box in boxes:
        detections = make_detections(t, *([make_detection(box, score)] if box else []))
        items = tracker.update(detections).items
        ids.append(items[0].track_id if items else None)
    return ids


def test_a_runner_at_five_detections_a_second_keeps_one_track() -> None:
    """Box 20 wide moving 12 px per detection: plain IoU x score is under ByteTrack's gate for a
    new track (the runner would never be tracked); buffered boxes keep it."""
    frames = [(i * 0.2, (10 + 12 * i, 10, 30 + 12 * i, 60)) for i in range(6)]
    plain = run_frames(ByteTracker("c", TrackerConfig(box_buffer=0), detect_fps=5), frames)
    buffered = run_frames(ByteTracker("c", TrackerConfig(), detect_fps=5), frames)
    assert len({i for i in plain if i is not None}) != 1 or None in plain[1:]
    assert None not in buffered[1:] and len({i for i in buffered if i is not None}) == 1


def test_a_fallen_person_seen_again_continues_the_standing_track() -> None:
    """Upright, missed for 1.5 s while going down, then a wide box at the same spot: one id."""
    upright = [(i * 0.2, (40.0, 10.0, 55.0, 60.0)) for i in range(6)]
    missed: list[tuple[float, tuple[float, float, float, float] | None]] = [
        (1.2 + i * 0.2, None) for i in range(8)
    ]
    lying = [(2.8 + i * 0.2, (30.0, 50.0, 75.0, 62.0)) for i in range(6)]
    ids = run_frames(ByteTracker("c", TrackerConfig(), detect_fps=5), upright + missed + lying)
    assert {i for i in ids if i is not None} == {ids[1]}
    unstitched = run_frames(
        ByteTracker("c", TrackerConfig(stitch_s=0), detect_fps=5), upright + missed + lying
    )
    assert len({i for i in unstitched if i is not None}) == 2


def test_someone_appearing_far_away_is_not_stitched() -> None:
    upright = [(i * 0.2, (10.0, 10.0, 25.0, 60.0)) for i in range(6)]
    elsewhere = [(1.6 + i * 0.2, (80.0, 40.0, 95.0, 90.0)) for i in range(4)]
    ids = run_frames(ByteTracker("c", TrackerConfig(), detect_fps=5), upright + elsewhere)
    assert len({i for i in ids if i is not None}) == 2


def test_stitching_never_reports_one_id_twice_in_a_frame() -> None:
    from monitor.track.stitch import TrackStitcher
    from monitor.types import Track, Tracks
    from tests.builders import make_frame

    stitcher = TrackStitcher(stitch_s=4.0, stitch_radius=1.0)
    here = make_detection((40, 10, 55, 60))
    stitcher.update(Tracks(make_frame(0.0), (Track("cam1", 2, here),)))
    # Track 2 vanishes; tracker id 7 appears at the same spot and continues it as 2 ...
    assert [t.track_id for t in stitcher.update(Tracks(make_frame(1.0), (Track("cam1", 7, here),))).items] == [2]
    # ... then the tracker re-finds its own track 2 elsewhere while 7 is still seen.
    there = make_detection((80, 10, 95, 60))
    both = stitcher.update(Tracks(make_frame(1.2), (Track("cam1", 7, here), Track("cam1", 2, there))))
    ids = [t.track_id for t in both.items]
    assert ids[0] == 2 and ids[1] != 2 and len(set(ids)) == 2


@pytest.mark.parametrize("refound_first", [True, False])
def test_a_refound_track_never_takes_back_an_id_that_was_stitched_away(refound_first: bool) -> None:
    """Across frames and in either output order: once tracker id 7 continues track 2, a re-found
    tracker track 2 is someone else, under a new id, for as long as it lives."""
    from monitor.track.stitch import TrackStitcher
    from monitor.types import Track, Tracks
    from tests.builders import make_frame

    stitcher = TrackStitcher(stitch_s=4.0, stitch_radius=1.0, keep_s=2.0)
    here, there = make_detection((40, 10, 55, 60)), make_detection((80, 10, 95, 60))

    def ids(t: float, *tracks: tuple[int, Detection]) -> list[int]:
        frame = Tracks(make_frame(t), tuple(Track("cam1", i, d) for i, d in tracks))
        return [track.track_id for track in stitcher.update(frame).items]

    assert ids(0.0, (2, here)) == [2]
    assert ids(1.0, (7, here)) == [2]                 # stitched: 7 continues 2
    alone = ids(1.2, (2, there))                      # 7 missed, ByteTrack re-finds 2 elsewhere
    assert alone != [2]
    pair = [(2, there), (7, here)] if refound_first else [(7, here), (2, there)]
    both = dict(zip([i for i, _ in pair], ids(1.4, *pair), strict=True))
    assert both[7] == 2 and both[2] == alone[0]
