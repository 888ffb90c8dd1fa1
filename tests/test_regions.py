"""Motion detection, the detection cadence, region planning and mosaic packing, on synthetic
pictures: a noisy grey background and bright rectangles standing in for people.

The RegionDetector tests use a "detector" that really looks at the pictures it is given (it finds
bright blobs with OpenCV), so they check that crops are cut, packed and mapped back correctly,
not that a fake returned what it was told to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest

from monitor.config import MotionConfig, RegionsConfig
from monitor.detect.mosaic import CropJob, pack, unpack
from monitor.detect.regions import RegionDetector, plan_regions
from monitor.geometry import merge_overlapping
from monitor.ingest.motion import MotionDetector, combine
from monitor.ingest.source import _Cadence
from monitor.types import Box, Detection, Frame, Motion

W, H = 768, 576
PERSON = (40, 100)  # w, h in pixels


def background(seed: int = 0) -> np.ndarray:
    """A grey scene with some texture and fresh sensor noise (sigma 2.5)."""
    rng = np.random.default_rng(seed)
    base = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(base, (100, 300), (700, 560), (60, 80, 70), -1)
    noise = rng.normal(0, 2.5, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def with_people(image: np.ndarray, *corners: tuple[int, int]) -> np.ndarray:
    out = image.copy()
    for x, y in corners:
        cv2.rectangle(out, (x, y), (x + PERSON[0], y + PERSON[1]), (250, 250, 250), -1)
    return out


def frame(image: np.ndarray, motion: Motion | None, camera: str = "cam1", t: float = 0.0) -> Frame:
    return Frame(camera, 0, image, datetime.now(UTC), t, motion)


# --- motion -----------------------------------------------------------------------------------


def warmed(config: MotionConfig | None = None) -> MotionDetector:
    detector = MotionDetector(config or MotionConfig())
    for seed in range(detector.config.warmup_frames + 2):
        detector.update(background(seed))
    return detector


def test_motion_is_unknown_until_the_background_is_learnt() -> None:
    detector = MotionDetector(MotionConfig(warmup_frames=5))
    results = [detector.update(background(seed)) for seed in range(7)]
    assert results[:5] == [None] * 5
    assert results[6] is not None


def test_sensor_noise_alone_is_not_motion() -> None:
    detector = warmed()
    for seed in range(100, 110):
        motion = detector.update(background(seed))
        assert motion is not None and motion.regions == ()


def test_a_person_appearing_is_one_region_around_them() -> None:
    detector = warmed()
    motion = detector.update(with_people(background(50), (300, 200)))
    assert motion is not None and len(motion.regions) == 1
    region = motion.regions[0]
    # Within the motion grid's resolution (768 px / 160 = 4.8 px a cell, plus the dilation).
    assert region.x1 == pytest.approx(300, abs=15) and region.x2 == pytest.approx(340, abs=15)
    assert region.y1 == pytest.approx(200, abs=15) and region.y2 == pytest.approx(300, abs=15)


def test_two_people_apart_are_two_regions() -> None:
    detector = warmed()
    motion = detector.update(with_people(background(51), (100, 100), (600, 400)))
    assert motion is not None and len(motion.regions) == 2


def test_a_light_switch_restarts_the_background() -> None:
    detector = warmed()
    bright = cv2.add(background(60), np.full((H, W, 3), 80, np.uint8))
    assert detector.update(bright) is None  # everything changed: look at everything
    assert detector.update(bright) is None  # and learn the new background first


def test_tiny_blobs_are_noise() -> None:
    detector = warmed(MotionConfig(min_area_fraction=0.01))
    image = background(70)
    cv2.rectangle(image, (400, 100), (406, 106), (255, 255, 255), -1)
    motion = detector.update(image)
    assert motion is not None and motion.regions == ()


def test_combined_motion_keeps_every_span_and_unknown_wins() -> None:
    a = Motion((Box(0, 0, 10, 10),), 0.1)
    b = Motion((Box(50, 50, 60, 60),), 0.3)
    assert combine(None, a, first=True) == a
    both = combine(a, b, first=False)
    assert both is not None and both.regions == a.regions + b.regions
    assert both.changed_fraction == 0.3
    assert combine(a, None, first=False) is None
    assert combine(None, b, first=False) is None


# --- cadence ----------------------------------------------------------------------------------


def test_cadence_takes_every_second_frame_of_a_jittery_10_fps_camera() -> None:
    cadence = _Cadence(detect_fps=5.0)
    rng = np.random.default_rng(1)
    times = [i * 0.1 + rng.uniform(-0.01, 0.01) for i in range(100)]
    due = [i for i, t in enumerate(times) if cadence.due(t)]
    assert 48 <= len(due) <= 52
    assert all(b - a in (1, 2, 3) for a, b in zip(due, due[1:], strict=False))


def test_cadence_restarts_after_a_pause_instead_of_bursting() -> None:
    cadence = _Cadence(detect_fps=5.0)
    assert cadence.due(0.0)
    assert cadence.due(0.2)
    # 10 s without frames, then 10 fps again: not every frame is due to "catch up".
    due = [cadence.due(10.0 + i * 0.1) for i in range(10)]
    assert sum(due) == 5


def test_cadence_above_the_camera_rate_takes_every_frame() -> None:
    cadence = _Cadence(detect_fps=30.0)
    assert all(cadence.due(i * 0.1) for i in range(20))


# --- planning ---------------------------------------------------------------------------------


def test_unknown_motion_means_the_whole_frame() -> None:
    plan = plan_regions(frame(background(), None), [], RegionsConfig())
    assert plan.crops is None and not plan.skipped


def test_nothing_moving_and_no_recent_track_is_skipped() -> None:
    plan = plan_regions(frame(background(), Motion((), 0.0)), [], RegionsConfig())
    assert plan.skipped


def test_a_still_recent_track_is_looked_at_again() -> None:
    track = Box(300, 200, 340, 300)
    plan = plan_regions(frame(background(), Motion((), 0.0)), [track],
                        RegionsConfig())
    assert plan.crops is not None and len(plan.crops) == 1
    crop = plan.crops[0]
    assert crop.x1 <= 300 and crop.y1 <= 200 and crop.x2 >= 340 and crop.y2 >= 300
    assert (crop.x2 - crop.x1) * (crop.y2 - crop.y1) < 0.1 * W * H


def test_regions_grow_to_the_minimum_size_and_stay_inside_the_frame() -> None:
    config = RegionsConfig(min_size_px=64, margin=0.0)
    plan = plan_regions(frame(background(), Motion((Box(0, 570, 4, 576),), 0.001)), [], config)
    assert plan.crops is not None
    (crop,) = plan.crops
    assert crop.x1 == 0 and crop.y2 == H
    assert crop.x2 >= 30 and crop.y2 - crop.y1 >= 30  # half of 64 on the inner sides


def test_regions_covering_most_of_the_frame_mean_the_whole_frame() -> None:
    motion = Motion((Box(0, 0, W * 0.95, H * 0.95),), 0.9)
    assert plan_regions(frame(background(), motion), [], RegionsConfig()).crops is None


def test_regions_off_still_skips_still_frames() -> None:
    config = RegionsConfig(enabled=False)
    assert plan_regions(frame(background(), Motion((), 0.0)), [], config).skipped
    moving = Motion((Box(10, 10, 50, 50),), 0.01)
    assert plan_regions(frame(background(), moving), [], config).crops is None


def test_overlapping_regions_merge_and_apart_ones_do_not() -> None:
    merged = merge_overlapping([Box(0, 0, 10, 10), Box(5, 5, 20, 20), Box(100, 100, 110, 110),
                                Box(18, 0, 30, 6)])
    assert sorted(b.as_list() for b in merged) == [[0, 0, 30, 20], [100, 100, 110, 110]]


# --- mosaic -----------------------------------------------------------------------------------


def test_packed_crops_fit_do_not_overlap_and_keep_their_pixels() -> None:
    image = with_people(background(), (100, 100), (500, 300))
    crops = [Box(80, 80, 160, 220), Box(480, 280, 560, 420), Box(0, 0, 300, 64)]
    canvases = pack([CropJob(0, image, c, 1.0) for c in crops], 640, 16)
    assert len(canvases) == 1
    canvas = canvases[0]
    assert canvas.image.shape[1] == 640 and canvas.image.shape[0] % 32 == 0
    tiles = canvas.tiles
    for i, a in enumerate(tiles):
        assert a.x + a.width <= 640 and a.y + a.height <= canvas.image.shape[0]
        for b in tiles[i + 1:]:
            apart = (a.x + a.width + 16 <= b.x or b.x + b.width + 16 <= a.x
                     or a.y + a.height + 16 <= b.y or b.y + b.height + 16 <= a.y)
            assert apart, (a, b)
        source = image[int(a.crop.y1):int(a.crop.y2), int(a.crop.x1):int(a.crop.x2)]
        np.testing.assert_array_equal(canvas.image[a.y:a.y + a.height, a.x:a.x + a.width], source)


def test_crops_that_do_not_fit_go_to_another_canvas() -> None:
    image = background()
    crops = [Box(0, 0, 600, 400), Box(0, 0, 600, 400)]
    canvases = pack([CropJob(i, image, c, 1.0) for i, c in enumerate(crops)], 640, 16)
    assert len(canvases) == 2


def test_unpack_maps_boxes_back_and_drops_the_gaps() -> None:
    image = background()
    canvas = pack([CropJob(7, image, Box(200, 100, 300, 300), 0.5)], 640, 16)[0]
    (tile,) = canvas.tiles
    inside = Detection(Box(tile.x + 5, tile.y + 10, tile.x + 25, tile.y + 60), 0.9, "person", "Normal")
    in_gap = Detection(Box(600, 0, 630, 20), 0.8, "person", "Normal")
    mapped = unpack(canvas, [inside, in_gap])
    assert list(mapped) == [7] and len(mapped[7]) == 1
    assert mapped[7][0].box.as_list() == [210.0, 120.0, 250.0, 220.0]  # / 0.5, + crop corner


# --- RegionDetector end to end ------------------------------------------------------------------


class BlobDetector:
    """Finds bright rectangles in each image it is given, as a person detector would find people."""

    imgsz = 640

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []

    def detect_images(self, images: Sequence[np.ndarray]) -> list[tuple[Detection, ...]]:
        self.calls.append([image.shape[:2] for image in images])
        found = []
        for image in images:
            grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            _, mask = cv2.threshold(grey, 200, 255, cv2.THRESH_BINARY)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            boxes = [cv2.boundingRect(c) for c in contours]
            found.append(tuple(Detection(Box(x, y, x + w, y + h), 0.9, "person", "Normal")
                               for x, y, w, h in boxes if w * h >= 20))
        return found


def test_region_detection_finds_people_where_whole_frame_detection_does() -> None:
    people = [(100, 100), (600, 400)]
    image = with_people(background(), *people)
    motion = Motion(tuple(Box(x - 3, y - 3, x + PERSON[0] + 3, y + PERSON[1] + 3)
                          for x, y in people), 0.02)
    still = frame(background(1), Motion((), 0.0), camera="cam2")
    unknown = frame(image, None, camera="cam3")
    model = BlobDetector()
    detector = RegionDetector(model, RegionsConfig(), lambda camera, now: ())
    regional, skipped, whole = detector.detect([frame(image, motion), still, unknown])

    expected = sorted([[float(x), float(y), float(x + PERSON[0] + 1), float(y + PERSON[1] + 1)]
                       for x, y in people])
    for result in (regional, whole):
        got = sorted(d.box.as_list() for d in result.items)
        assert len(got) == 2
        for box, want in zip(got, expected, strict=True):
            assert box == pytest.approx(want, abs=2.5)  # crops are scaled 640/768 and back
    assert skipped.items == ()
    # One call for the whole frame (480x640 after ultralytics' letterbox, 576x768 here) and one
    # packed image, far smaller than a frame, for the crops.
    shapes = sorted(shape for call in model.calls for shape in call)
    assert (H, W) in shapes
    packed = [s for s in shapes if s != (H, W)]
    assert len(packed) == 1 and packed[0][1] == 640 and packed[0][0] * 640 < 0.5 * 480 * 640
    stats = detector.stats()
    assert (stats.whole, stats.regions, stats.skipped) == ({"cam3": 1}, {"cam1": 1}, {"cam2": 1})
    assert sum(stats.inputs.values()) == 2


def test_people_keep_their_boxes_while_nothing_moves_and_are_looked_at_again_later() -> None:
    image = with_people(background(), (300, 200))
    person = Box(300, 200, 341, 301)
    model = BlobDetector()
    detector = RegionDetector(model, RegionsConfig(still_recheck_s=2.0),
                              lambda camera, now: (person,))
    moving = Motion((person,), 0.01)
    still = Motion((), 0.0)

    first = detector.detect([frame(image, moving, t=0.0)])[0]
    assert len(first.items) == 1 and len(model.calls) == 1
    held = [detector.detect([frame(image, still, t=t)])[0] for t in (0.2, 1.0, 1.9)]
    assert len(model.calls) == 1  # nothing moved: the model was not asked again
    assert all(h.items == first.items for h in held)
    rechecked = detector.detect([frame(image, still, t=2.1)])[0]
    assert len(model.calls) == 2 and len(rechecked.items) == 1
    stats = detector.stats()
    assert stats.held == {"cam1": 3} and stats.regions == {"cam1": 2}


def test_kept_boxes_are_marked_held() -> None:
    image = with_people(background(), (300, 200))
    person = Box(300, 200, 341, 301)
    model = BlobDetector()
    detector = RegionDetector(model, RegionsConfig(), lambda camera, now: (person,))
    inferred = detector.detect([frame(image, Motion((person,), 0.01), t=0.0)])[0]
    held = detector.detect([frame(image, Motion((), 0.0), t=0.2)])[0]
    assert not inferred.held and held.held and held.items == inferred.items
    assert len(model.calls) == 1


def test_held_sightings_keep_an_event_alive_but_confirm_nothing() -> None:
    # A one-off false detection must be confirmed by the model, not by copies of itself.
    from monitor.config import EventsConfig
    from monitor.events.lifecycle import EventLifecycle
    from monitor.types import Track, Tracks

    config = EventsConfig(confirm_frames=3, end_after_s=2.0, alert_never_moved=True)
    lifecycle = EventLifecycle("cam1", ["person"], [], config)
    seen = Detection(Box(300, 200, 341, 301), 0.9, "person", "Normal")

    def feed(t: float, held: bool) -> list[str]:
        tracks = Tracks(frame(background(), None, t=t), (Track("cam1", 1, seen),), held=held)
        return [a.type.value for a in lifecycle.update(tracks)]

    assert feed(0.0, held=False) == []
    assert [feed(t, held=True) for t in (0.2, 0.4, 0.6)] == [[], [], []]
    assert not lifecycle.is_confirmed(1)  # three kept copies did not confirm it
    assert feed(0.8, held=False) == [] and feed(1.0, held=False) == ["start"]
    # Confirmed: held sightings keep it open well past end_after_s.
    assert all(feed(1.0 + 0.5 * i, held=True) == [] for i in range(1, 9))
    assert lifecycle.is_confirmed(1)


def test_a_recent_track_outside_the_frame_does_not_break_the_round() -> None:
    gone = Box(2000, 1500, 2100, 1700)  # from before the stream shrank
    plan = plan_regions(frame(background(), Motion((), 0.0)), [gone], RegionsConfig())
    assert plan.crops is None  # nothing left to crop: look at the whole frame


def test_with_no_recent_track_a_still_frame_is_skipped_not_held() -> None:
    model = BlobDetector()
    detector = RegionDetector(model, RegionsConfig(), lambda camera, now: ())
    detector.detect([frame(with_people(background(), (300, 200)), None, t=0.0)])
    skipped = detector.detect([frame(background(), Motion((), 0.0), t=0.2)])[0]
    assert skipped.items == () and len(model.calls) == 1
    assert detector.stats().skipped == {"cam1": 1} and detector.stats().held == {}


def test_a_frame_replaced_in_the_slot_hands_its_motion_on() -> None:
    from monitor.ingest.latest import LatestFrame

    slot = LatestFrame()
    walker = Box(100, 100, 140, 200)
    slot.put(frame(background(), Motion((walker,), 0.01)))
    slot.put(frame(background(), Motion((), 0.0)))  # the detector never saw the first
    taken = slot.take()
    assert taken is not None and taken.motion is not None
    assert taken.motion.regions == (walker,) and slot.dropped == 1


def test_boxes_mapped_back_never_leave_their_crop() -> None:
    # 0.833 x 103 px rounds up to an 86 px tile, which maps back to 103.2 px: a box reaching the
    # tile's right edge must still end at the crop's (here the frame's) edge.
    image = background()
    crop = Box(W - 103, 0, W, 100)
    canvas = pack([CropJob(0, image, crop, 640 / 768)], 640, 16)[0]
    (tile,) = canvas.tiles
    edge = Detection(Box(tile.x + 40, tile.y, tile.x + tile.width, tile.y + 50), 0.9, "person",
                     "Normal")
    (mapped,) = unpack(canvas, [edge])[0]
    assert mapped.box.x2 <= W and mapped.box.y2 <= 100
