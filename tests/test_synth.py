"""The clip generator: background, crops, geometry, planning and the files it writes.

Fast tests run on a small fake video (textured ellipses walking over a textured background)
with a fake detector that boxes whatever differs from the known background; one slow test uses
the real footage and the real detector.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.events.zones import Zone
from monitor.geometry import iou
from monitor.synth import SynthSettings, generate_clips
from monitor.synth.annotate import feet_in_zone
from monitor.synth.assets import load_or_build
from monitor.synth.background import median_background
from monitor.synth.boxes import in_view, inside_frame
from monitor.synth.compose import CACHE_FOLDER, make_cast, plan_clips
from monitor.synth.crops import (
    CropSettings, PersonCrop, ScoredBox, cut_crop, fit_perspective, harvest_crops, select_boxes,
)
from monitor.synth.plan import ClipSpec
from monitor.synth.render import Placed, Pose, pose_box, render_frame
from monitor.synth.video import spread_indices
from monitor.types import Box
from tests.builders import read_video

WIDTH, HEIGHT, FAKE_FRAMES, FPS = 320, 240, 48, 10.0
BoxList = list[tuple[float, float, float, float, float]]


# --- a fake scene ------------------------------------------------------------------------------


def make_background() -> np.ndarray:
    """A textured, non-uniform scene (a flat one would hide masking mistakes)."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(60, 140, WIDTH, dtype=np.float32)[None, :, None]
    texture = cv2.GaussianBlur(rng.uniform(-25, 25, (HEIGHT, WIDTH, 3)).astype(np.float32), (0, 0), 2)
    tint = np.array([20, 40, 0], dtype=np.float32)
    image: np.ndarray = np.clip(ramp + tint + texture, 0, 255).astype(np.uint8)
    return image


@dataclass(frozen=True)
class Walker:
    """A fake person: an ellipse of height 0.2 * foot row + 8 walking sideways."""

    foot_y: float
    x0: float
    speed_px: float
    colour: tuple[int, int, int]

    def box(self, frame: int) -> tuple[float, float, float, float]:
        height = 0.2 * self.foot_y + 8
        x = (self.x0 + self.speed_px * frame) % (WIDTH + 60) - 30
        return x - 0.22 * height, self.foot_y - height, x + 0.22 * height, self.foot_y


WALKERS = (
    Walker(110, 10, 7.0, (20, 20, 200)),
    Walker(165, 200, -6.0, (200, 40, 40)),
    Walker(225, 90, 8.0, (30, 160, 240)),
)


def paint(background: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Draw a stick-ish person (head, torso, two legs) filling each box, one colour per walker."""
    image = background.copy()
    for (x1, y1, x2, y2), walker in zip(boxes, WALKERS, strict=True):
        h, cx = y2 - y1, (x1 + x2) / 2

        def at(dx: float, dy: float) -> tuple[int, int]:
            return round(cx + dx * h), round(y1 + dy * h)

        cv2.circle(image, at(0, 0.1), round(0.1 * h), (60, 190, 230), cv2.FILLED)
        cv2.ellipse(image, at(0, 0.4), (round(0.22 * h), round(0.2 * h)), 0, 0, 360,
                    walker.colour, cv2.FILLED)
        for side in (-1, 1):
            cv2.line(image, at(side * 0.08, 0.55), at(side * 0.15, 0.96), (40, 30, 30),
                     round(0.08 * h))
    return image


def fake_detector(background: np.ndarray, score: float = 0.9) -> Callable[[np.ndarray], BoxList]:
    """Boxes every blob that differs from the known background (minimum 40 pixels)."""

    def detect(image: np.ndarray) -> BoxList:
        diff = np.abs(image.astype(np.int16) - background).max(axis=2) > 45
        count, _, stats, _ = cv2.connectedComponentsWithStats(diff.astype(np.uint8))
        return [
            (float(x), float(y), float(x + w), float(y + h), score)
            for x, y, w, h, area in stats[1:count]
            if area >= 40
        ]

    return detect


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A fake fixed-camera video (MJPG .avi) and its true background."""
    background = make_background()
    path = tmp_path_factory.mktemp("footage") / "fake.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (WIDTH, HEIGHT))
    for frame in range(FAKE_FRAMES):
        writer.write(paint(background, [w.box(frame) for w in WALKERS]))
    writer.release()
    return path, background


FAST = SynthSettings(
    clip_s=3.0,
    loiter_s=(4.0, 5.0),
    loiter_tail_s=0.5,
    loiter_pause_s=(0.0, 0.5),
    loiter_approach_m=1.0,
    fall_at_s=(0.8, 1.5),
    fall_upright_s=0.5,
    fall_s=(0.3, 0.5),
    run_in_view_s=1.0,
    walkers=(1, 1),
    ground_y=(0.45, 0.95),
    loitering_s=3.0,
    crowd_size=2,
    crowd_for_s=2.0,
    zone_pass_s=1.5,
    crowd_stay_s=(3.5, 4.0),
    crowd_gap_s=(0.3, 0.5),
    crossers=(1, 2),
    background_frames=15,
    crops=CropSettings(sample_frames=12, height_px=(20.0, 200.0), edge_margin_px=4.0,
                       spacing_px=6.0, pad_px=3, open_px=3, close_px=3, min_crops=2,
                       min_perspective_boxes=4),
)


DEFAULT = SynthSettings(background_frames=FAST.background_frames, crops=FAST.crops)
"""The shipped motion settings (20 s clips), planned on the small fake scene's assets."""


@dataclass(frozen=True)
class Generated:
    out_dir: Path
    paths: list[Path]
    annotations: list[dict[str, object]]
    specs: dict[str, ClipSpec]


def run_generator(footage: Path, background: np.ndarray, out_dir: Path, seed: int) -> Generated:
    detect = fake_detector(background)
    paths = generate_clips(footage, out_dir, seed=seed, per_kind=1, detect=detect, settings=FAST)
    annotations = json.loads((out_dir / "annotations.json").read_text())
    assets = load_or_build(footage, out_dir / CACHE_FOLDER, detect, FAST, lambda _: None)
    specs = {s.name: s for s in plan_clips(seed, 1, make_cast(assets, FAST), FAST)}
    return Generated(out_dir, paths, annotations, specs)


@pytest.fixture(scope="module")
def generated(scene: tuple[Path, np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Generated:
    footage, background = scene
    return run_generator(footage, background, tmp_path_factory.mktemp("clips"), seed=3)


# --- background and crops ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [(10, 5, (1, 3, 5, 7, 9)), (4, 10, (0, 1, 2, 3)), (0, 3, ()), (795, 1, (397,))],
)
def test_spread_indices(total: int, count: int, expected: tuple[int, ...]) -> None:
    assert spread_indices(total, count) == expected


def test_median_background_removes_moving_people() -> None:
    background = make_background()
    frames = [paint(background, [w.box(f) for w in WALKERS]) for f in range(0, FAKE_FRAMES, 3)]
    assert max(np.abs(f.astype(int) - background).max() for f in frames) > 100  # people painted
    plate = median_background(frames)
    assert np.abs(plate.astype(int) - background).max() == 0


def scored(x1: float, y1: float, x2: float, y2: float, score: float = 0.9) -> ScoredBox:
    return ScoredBox(Box(x1, y1, x2, y2), score)


SETTINGS = CropSettings(height_px=(20.0, 200.0), edge_margin_px=4.0, spacing_px=6.0)


@pytest.mark.parametrize(
    ("boxes", "kept", "reasons"),
    [
        ([scored(50, 50, 70, 100)], 1, {}),
        ([scored(50, 50, 70, 100, score=0.3)], 0, {"score": 1}),
        ([scored(1, 50, 21, 100)], 0, {"edge": 1}),
        ([scored(50, 50, 70, 62)], 0, {"size": 1}),
        ([scored(50, 50, 100, 100)], 0, {"aspect": 1}),
        ([scored(50, 50, 70, 100), scored(74, 50, 94, 100)], 0, {"neighbour": 2}),
        ([scored(50, 50, 70, 100), scored(90, 50, 110, 100)], 2, {}),
        # a weak neighbour is not cut, but still spoils the confident box next to it
        ([scored(50, 50, 70, 100), scored(72, 50, 92, 100, score=0.3)], 0,
         {"neighbour": 1, "score": 1}),
    ],
)
def test_select_boxes(boxes: list[ScoredBox], kept: int, reasons: dict[str, int]) -> None:
    chosen, why = select_boxes(boxes, WIDTH, HEIGHT, SETTINGS)
    assert len(chosen) == kept
    assert dict(why) == reasons


def test_cut_crop_masks_the_person_and_rejects_bad_masks() -> None:
    background = make_background()
    walker = WALKERS[1]
    x1, y1, x2, y2 = walker.box(0)
    image = paint(background, [(-50, -50, -40, -40), (x1, y1, x2, y2), (-50, -50, -40, -40)])
    crop = cut_crop(image, background, scored(x1, y1, x2, y2), 0, SETTINGS)
    assert isinstance(crop, PersonCrop)
    assert crop.height_px == pytest.approx(y2 - y1, abs=2)
    assert crop.foot[0] == pytest.approx((x2 - x1) / 2 + SETTINGS.pad_px, abs=1.5)
    assert crop.foot[1] == pytest.approx(y2 - y1 + SETTINGS.pad_px, abs=2)
    assert crop.alpha.max() == pytest.approx(1.0, abs=0.01)
    assert crop.alpha[0, 0] == 0.0  # outside the ellipse: transparent

    empty = cut_crop(background, background, scored(x1, y1, x2, y2), 0, SETTINGS)
    assert empty == "fill"
    full = background.copy()
    cv2.rectangle(full, (int(x1) - 8, int(y1) - 8), (int(x2) + 8, int(y2) + 8), (0, 0, 255), cv2.FILLED)
    assert cut_crop(full, background, scored(x1, y1, x2, y2), 0, SETTINGS) in {"fill", "border"}


def test_fit_perspective_ignores_outliers() -> None:
    boxes = [Box(0, y - (0.25 * y + 10), 10, y) for y in range(100, 500, 40)]
    boxes.append(Box(0, 300, 10, 310))  # a sitting person: far off the line
    perspective = fit_perspective(boxes, CropSettings(min_perspective_boxes=4))
    assert perspective.slope == pytest.approx(0.25, abs=1e-6)
    assert perspective.intercept == pytest.approx(10, abs=1e-4)


def test_harvest_leaves_static_objects_out_of_crops_and_perspective() -> None:
    background = make_background()
    static = (20.0, 200.0, 80.0, 225.0)  # a jacket on the lawn: low and flat, boxed every frame
    cv2.rectangle(background, (20, 200), (80, 225), (0, 220, 240), cv2.FILLED)
    frames = {f: paint(background, [w.box(f) for w in WALKERS]) for f in range(0, FAKE_FRAMES, 4)}
    people = fake_detector(background)

    def detect(image: np.ndarray) -> BoxList:
        return [*people(image), (*static, 0.9)]

    settings = CropSettings(height_px=(20.0, 200.0), edge_margin_px=4.0, spacing_px=6.0,
                            pad_px=3, open_px=3, close_px=3, min_perspective_boxes=4)
    harvest = harvest_crops(frames, background, detect, settings, static=[Box(*static)])
    assert harvest.perspective.slope == pytest.approx(0.2, abs=0.02)  # the painted people's
    assert dict(harvest.rejected)["static"] == len(frames)
    assert all(crop.height_px > 28 for crop in harvest.crops)  # none is the 25 px jacket
    assert len(harvest.crops) >= len(frames)


# --- geometry ----------------------------------------------------------------------------------


def square_crop() -> PersonCrop:
    """A 10 x 40 opaque white person standing on (5, 40) of its own crop."""
    alpha = np.ones((40, 10), dtype=np.float32)
    hull = np.array([[0, 0], [9, 0], [9, 39], [0, 39]], dtype=np.float32)
    return PersonCrop(np.full((40, 10, 3), 255, np.uint8), alpha, (4.5, 39.5), 40.0, hull, 0, 0.9)


@pytest.mark.parametrize(
    ("pose", "expected"),
    [
        (Pose(100, 150, 80), (91, 71, 109, 149)),            # scaled x2, foot on the ground point
        (Pose(100, 150, 80, angle_deg=90), (101, 141, 179, 159)),   # lying, head to the right
        (Pose(100, 150, 80, angle_deg=-90), (21, 141, 99, 159)),    # lying, head to the left
        (Pose(100, 150, 80, lift_px=5), (91, 66, 109, 144)),
    ],
)
def test_pose_box(pose: Pose, expected: tuple[float, float, float, float]) -> None:
    box = pose_box(square_crop(), pose)
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx(expected, abs=0.01)


def test_render_frame_draws_inside_the_pose_box_only() -> None:
    background = np.zeros((200, 200, 3), np.uint8)
    crop, pose = square_crop(), Pose(100, 150, 80, angle_deg=90)
    image = render_frame(background, [Placed(crop, pose)])
    ys, xs = np.nonzero(image.max(axis=2) > 127)
    box = pose_box(crop, pose)
    assert xs.min() >= box.x1 - 1 and xs.max() <= box.x2 + 1
    assert ys.min() >= box.y1 - 1 and ys.max() <= box.y2 + 1
    assert (xs.max() - xs.min()) > 70  # lying: long sideways


# --- whole clips -------------------------------------------------------------------------------


def test_clips_are_written_and_readable(generated: Generated) -> None:
    names = sorted(p.name for p in generated.paths)
    assert names == ["crowd_3_0.avi", "fall_3_0.avi", "line_crossing_3_0.avi", "loitering_3_0.avi",
                     "running_3_0.avi", "walk_3_0.avi"]
    for path in generated.paths:
        frames = list(read_video(path))
        assert len(frames) == generated.specs[path.name].n_frames
        assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
        assert not np.array_equal(frames[0], frames[1])  # sensor noise at least
    clips = json.loads((generated.out_dir / "clips.json").read_text())
    assert clips["fps"] == FAST.fps and clips["seed"] == 3
    assert clips["zone"] == [list(p) for p in FAST.zone]
    assert clips["settings"]["walk_speed_mps"] == list(FAST.walk_speed_mps)


def test_each_clip_has_the_rows_of_its_kind(generated: Generated) -> None:
    """Line crossings are labelled in every clip (anyone may cross the line); the rest only
    where someone did it: the fall, the run, the stays, the crowd."""
    kinds: dict[str, list[str]] = {}
    for row in generated.annotations:
        kinds.setdefault(str(row["clip"]), []).append(str(row["kind"]))
    others = {clip: sorted(k for k in found if k != "line_crossing") for clip, found in kinds.items()}
    assert others.get("fall_3_0.avi") == ["fall"]
    assert others.get("running_3_0.avi") == ["running"]
    assert others.get("loitering_3_0.avi") == ["loitering"]
    # Both members of the crowd of two stay longer than loitering_s: two loiterings, one crowd.
    assert others.get("crowd_3_0.avi") == ["crowd", "loitering", "loitering"]
    assert others.get("walk_3_0.avi", []) == []
    assert kinds["line_crossing_3_0.avi"].count("line_crossing") >= FAST.crossers[0]


def test_crowd_members_arrive_rightmost_first_and_leave_it_last(generated: Generated) -> None:
    spec = generated.specs["crowd_3_0.avi"]
    members = [a for a in spec.actors if a.role == "member"]
    assert len(members) == FAST.crowd_size
    zone = Zone("z", FAST.zone)
    stays = [np.flatnonzero(feet_in_zone(a.boxes, zone, WIDTH, HEIGHT)) for a in members]
    spots = [a.trajectory.x[s[len(s) // 2]] for a, s in zip(members, stays, strict=True)]
    assert spots == sorted(spots, reverse=True)  # they walk in from the left
    assert [s[0] for s in stays] == sorted(s[0] for s in stays)
    assert [s[-1] for s in stays] == sorted((s[-1] for s in stays), reverse=True)
    row = next(r for r in generated.annotations
               if r["clip"] == "crowd_3_0.avi" and r["kind"] == "crowd")
    assert float(str(row["start"])) == pytest.approx(stays[-1][0] / spec.fps, abs=1e-3)
    assert float(str(row["end"])) == pytest.approx((stays[-1][-1] + 1) / spec.fps, abs=1e-3)


def test_line_crossings_are_counted_where_the_foot_changes_side(generated: Generated) -> None:
    line_x = FAST.line[0][0] * WIDTH  # the default line is vertical
    for path in generated.paths:
        spec = generated.specs[path.name]
        expected = {"in": 0, "out": 0}
        for actor in spec.actors:
            foot = (actor.boxes[:, 0] + actor.boxes[:, 2]) / 2
            seen = foot[~np.isnan(foot)]
            far = seen[np.abs(seen - line_x) > FAST.line_hysteresis * WIDTH]
            sides = np.sign(far - line_x)
            for before, after in zip(sides, sides[1:]):
                if before != after:  # right of a line drawn downwards is screen-left: "in"
                    expected["in" if after < 0 else "out"] += 1
        people = json.loads(path.with_suffix(".people.json").read_text())
        assert people["crossings"] == expected, path.name
        rows = [r for r in generated.annotations
                if r["clip"] == path.name and r["kind"] == "line_crossing"]
        assert len(rows) == sum(expected.values()), path.name


def frames_of(row: dict[str, object], spec: ClipSpec) -> range:
    start, end = float(str(row["start"])), float(str(row["end"]))
    return range(round(start * spec.fps), round(end * spec.fps))


def test_fall_lasts_from_going_down_to_the_end(generated: Generated) -> None:
    row = next(r for r in generated.annotations if r["kind"] == "fall")
    spec = generated.specs["fall_3_0.avi"]
    frames = frames_of(row, spec)
    assert frames.start == spec.fall_frame and frames.stop == spec.n_frames
    angles = spec.labelled.trajectory.angle_deg
    assert angles[frames.start - 1] == 0.0 and abs(angles[frames.start]) > 0.0
    assert 80 - 2 <= abs(angles[-1]) <= 95 + 2
    box = spec.labelled.boxes[-1]
    assert box[2] - box[0] > box[3] - box[1]  # lying: wider than tall


def test_running_interval_is_while_the_runner_is_in_view(generated: Generated) -> None:
    row = next(r for r in generated.annotations if r["kind"] == "running")
    spec = generated.specs["running_3_0.avi"]
    frames = frames_of(row, spec)
    visible = in_view(spec.labelled.boxes, WIDTH, HEIGHT, FAST.in_view_frac)
    assert visible[frames.start] and visible[frames.stop - 1]
    assert not visible[: frames.start].any() and not visible[frames.stop:].any()
    steps = np.abs(np.diff(spec.labelled.trajectory.x))
    widths = spec.labelled.boxes[:, 2] - spec.labelled.boxes[:, 0]
    # trackable; 2 %: the step is sized at the row the runner leaves, the box at the row reached
    assert np.nanmax(steps / widths[1:]) <= FAST.max_step_box_frac * 1.02


def test_loitering_interval_is_while_the_feet_are_in_the_zone(generated: Generated) -> None:
    row = next(r for r in generated.annotations if r["kind"] == "loitering")
    spec = generated.specs["loitering_3_0.avi"]
    frames = frames_of(row, spec)
    zone = Zone("z", FAST.zone)
    inside = feet_in_zone(spec.labelled.boxes, zone, WIDTH, HEIGHT)
    assert inside[frames.start : frames.stop].all()
    assert not inside[: frames.start].any() and not inside[frames.stop:].any()
    assert frames.start > 0  # seen walking in first
    # The stay ends once the loiterer is out, and walking out can take a while in this small
    # scene's wide zone (about 5 m at 1-1.7 m/s): allow some of that on top.
    assert FAST.loiter_s[0] - 0.5 <= len(frames) / spec.fps <= FAST.loiter_s[1] + 2.0
    assert frames.stop <= spec.n_frames


def test_people_keep_apart(generated: Generated) -> None:
    # A distractor that finds no clear path is left out, so count them over all clips only.
    assert sum(len(spec.actors) - 1 for spec in generated.specs.values()) >= 2
    gap = FAST.separation_px
    for spec in generated.specs.values():
        for i, first in enumerate(spec.actors):
            for second in spec.actors[i + 1:]:
                a, b = first.boxes, second.boxes
                with np.errstate(invalid="ignore"):
                    near = ((a[:, 0] - gap < b[:, 2]) & (b[:, 0] - gap < a[:, 2])
                            & (a[:, 1] - gap < b[:, 3]) & (b[:, 1] - gap < a[:, 3]))
                assert not near.any(), spec.name


def test_same_seed_same_clips_other_seed_other_clips(
    scene: tuple[Path, np.ndarray], generated: Generated, tmp_path: Path
) -> None:
    footage, background = scene
    again = run_generator(footage, background, tmp_path / "again", seed=3)
    assert again.annotations == generated.annotations
    first = next(read_video(again.out_dir / "fall_3_0.avi"))
    assert np.array_equal(first, next(read_video(generated.out_dir / "fall_3_0.avi")))
    other = run_generator(footage, background, tmp_path / "other", seed=4)
    assert [r["start"] for r in other.annotations] != [r["start"] for r in generated.annotations]


def test_a_second_seed_in_the_same_folder_keeps_the_first_rows(
    scene: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    footage, background = scene
    run_generator(footage, background, tmp_path, seed=5)
    second = run_generator(footage, background, tmp_path, seed=6)
    clips = {str(r["clip"]) for r in second.annotations}
    assert {c.rsplit("_", 2)[1] for c in clips} == {"5", "6"}
    assert all((tmp_path / c).is_file() for c in clips)
    with pytest.raises(ValueError, match="another out_dir"):
        generate_clips(footage, tmp_path, seed=7, per_kind=1, detect=fake_detector(background),
                       settings=SynthSettings(fps=5.0, crops=FAST.crops))


# --- planning with the shipped settings ----------------------------------------------------------


@pytest.fixture(scope="module")
def planned(scene: tuple[Path, np.ndarray], generated: Generated) -> list[ClipSpec]:
    """Six clips of every kind planned with the shipped motion settings on the fake scene."""
    footage, background = scene
    assets = load_or_build(footage, generated.out_dir / CACHE_FOLDER, fake_detector(background),
                           DEFAULT, lambda _: None)
    return plan_clips(21, 6, make_cast(assets, DEFAULT), DEFAULT)


def of_kind(specs: list[ClipSpec], kind: str) -> list[ClipSpec]:
    chosen = [spec for spec in specs if spec.kind == kind]
    assert len(chosen) == 6
    return chosen


def test_fallers_go_down_well_inside_the_frame(planned: list[ClipSpec]) -> None:
    for spec in of_kind(planned, "fall"):
        assert spec.fall_frame is not None
        trajectory, boxes = spec.labelled.trajectory, spec.labelled.boxes
        foot_x, foot_y = trajectory.x[spec.fall_frame], trajectory.y[spec.fall_frame]
        assert 0.2 * WIDTH <= foot_x <= 0.8 * WIDTH, spec.name
        assert foot_y >= 0.45 * HEIGHT, spec.name
        lying = boxes[spec.fall_frame:]
        assert inside_frame(lying, WIDTH, HEIGHT, DEFAULT.edge_margin_px).all(), spec.name
        assert DEFAULT.edge_margin_px >= 8


def test_fallers_are_seen_walking_upright_before_going_down(planned: list[ClipSpec]) -> None:
    before = round(3.0 * DEFAULT.fps)
    assert DEFAULT.fall_upright_s >= 3.0
    for spec in of_kind(planned, "fall"):
        assert spec.fall_frame is not None
        walk = range(spec.fall_frame - before, spec.fall_frame)
        assert walk.start >= 0, spec.name
        trajectory, boxes = spec.labelled.trajectory, spec.labelled.boxes
        assert in_view(boxes[walk.start:walk.stop], WIDTH, HEIGHT, DEFAULT.in_view_frac).all()
        assert (trajectory.angle_deg[walk.start:walk.stop] == 0.0).all(), spec.name
        assert (np.abs(np.diff(trajectory.x[walk.start:walk.stop])) > 0).all(), spec.name


def test_runners_stay_near_and_in_view_long_enough(planned: list[ClipSpec]) -> None:
    for spec in of_kind(planned, "running"):
        rows = spec.labelled.trajectory.y
        assert np.nanmin(rows) >= 0.45 * HEIGHT, spec.name
        seen = in_view(spec.labelled.boxes, WIDTH, HEIGHT, DEFAULT.in_view_frac)
        assert seen.sum() >= 2.5 * DEFAULT.fps, spec.name


def test_only_the_loiterer_and_a_crowd_stay_in_the_zone(planned: list[ClipSpec]) -> None:
    zone = Zone("z", DEFAULT.zone)
    for spec in planned:
        for actor in spec.actors:
            frames = feet_in_zone(actor.boxes, zone, WIDTH, HEIGHT).sum()
            if actor.role == "member":
                assert frames >= DEFAULT.crowd_stay_s[0] * DEFAULT.fps, spec.name
            elif actor.role == "loiterer":
                assert frames >= DEFAULT.loiter_s[0] * DEFAULT.fps - 5, spec.name
                assert not feet_in_zone(actor.boxes[:1], zone, WIDTH, HEIGHT)[0], spec.name
            else:
                assert frames <= DEFAULT.zone_pass_s * DEFAULT.fps, (spec.name, actor.role)


def test_a_zone_holding_a_static_object_is_refused(
    scene: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    footage, background = scene
    people = fake_detector(background)
    static = (40.0, 200.0, 90.0, 225.0)  # a jacket on the lawn, foot point (65, 225)

    def detect(image: np.ndarray) -> BoxList:
        return [*people(image), (*static, 0.9)]

    lower_left = ((0.05, 0.55), (0.45, 0.55), (0.45, 0.98), (0.05, 0.98))
    settings = dataclasses.replace(FAST, zone=lower_left)
    with pytest.raises(ValueError, match=r"foot point \(65, 225\) px of a static object"):
        generate_clips(footage, tmp_path, seed=1, per_kind=1, detect=detect, settings=settings)
    assert not list(tmp_path.glob("*.avi"))
    assets = load_or_build(footage, tmp_path / CACHE_FOLDER, detect, FAST, lambda _: None)
    assert len(assets.obstacles) == 1
    make_cast(assets, FAST)  # the default zone, lower right, is clear of it


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fps": 0.0}, "fps"),
        ({"walkers": (2, 1)}, "walkers"),
        ({"run_speed_mps": (4.0, 2.0)}, "run_speed_mps"),
        ({"zone": ((0.1, 0.1), (0.5, 1.5), (0.9, 0.1))}, "zone"),
        ({"fall_x": (0.2, 1.2)}, "fall_x"),
        ({"run_ground_y": (0.9, 0.5)}, "run_ground_y"),
        ({"fall_upright_s": 4.0, "fall_at_s": (3.0, 6.0)}, "fall_upright_s"),
        ({"run_in_view_s": 0.0}, "run_in_view_s"),
        ({"zone_pass_s": -1.0}, "zone_pass_s"),
    ],
)
def test_settings_reject_bad_values(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthSettings(**changes)  # type: ignore[arg-type]


# --- the real thing -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_real_detector_sees_the_fallen_person(footage: Path, tmp_path: Path) -> None:
    from monitor.config import DetectorConfig
    from monitor.detect.yolo import YoloDetector
    from monitor.types import Frame

    detector = YoloDetector(DetectorConfig())
    detector.warm_up()

    def detect(image: np.ndarray) -> BoxList:
        frame = Frame(camera="synth", index=0, image=image, captured_at=datetime.now(UTC),
                      monotonic=0.0)
        return [(d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score)
                for d in detector.detect([frame])[0].items]

    settings = SynthSettings(clip_s=8.0, fall_at_s=(3.0, 4.0), loiter_s=(3.0, 4.0))
    paths = generate_clips(footage, tmp_path, seed=11, per_kind=1, detect=detect, settings=settings)
    assets = load_or_build(footage, tmp_path / CACHE_FOLDER, detect, settings, lambda _: None)
    spec = next(s for s in plan_clips(11, 1, make_cast(assets, settings), settings) if s.kind == "fall")
    assert spec.fall_frame is not None
    frames = list(read_video(next(p for p in paths if p.name == spec.name)))
    lying_from = spec.fall_frame + math.ceil(settings.fall_s[1] * settings.fps)
    checked = found = 0
    for index in range(lying_from, spec.n_frames, 2):
        truth = Box(*spec.labelled.boxes[index])
        checked += 1
        found += any(iou(truth, Box(*d[:4])) >= 0.3 for d in detect(frames[index]))
    assert checked >= 10
    assert found / checked >= 0.8, f"lying person found in {found} of {checked} frames"



def test_every_clip_says_how_many_people_are_in_view_and_in_the_zone(generated: Generated) -> None:
    for path in generated.paths:
        people = json.loads(path.with_suffix(".people.json").read_text())
        spec = generated.specs[path.name]
        assert len(people["in_view"]) == len(people["in_zone"]) == spec.n_frames
        assert max(people["in_view"]) <= len(spec.actors)
        assert all(z <= v or v == 0 for z, v in zip(people["in_zone"], people["in_view"]))
    loiterer = next(p for p in generated.paths if p.name.startswith("loitering"))
    people = json.loads(loiterer.with_suffix(".people.json").read_text())
    assert max(people["in_zone"]) >= 1              # the loiterer stands in the zone
