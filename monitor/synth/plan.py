"""Planning one clip: who is in it, which crop each person wears, and how everyone moves.

The labelled person (the faller, the runner, the loiterer, or for ``walk`` clips a walker) is
planned first; distractor walkers are then drawn until one keeps clear of everyone already in the
clip in every frame, so no two people's boxes ever merge into one detection.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.synth.boxes import boxes_near, foot_points, in_view, inside_frame
from monitor.synth.crops import PersonCrop
from monitor.synth.motion import (
    FallShape, Gait, Route, Segment, Stage, Trajectory, assemble, crossing_route, fall_and_lie,
    follow, head,
)
from monitor.synth.render import pose_box
from monitor.synth.settings import WALK, SynthSettings
from monitor.types import EventKind

ROLE_FOR_KIND = {EventKind.FALL.value: "faller", EventKind.RUNNING.value: "runner",
                 EventKind.LOITERING.value: "loiterer", EventKind.CROWD.value: "member",
                 EventKind.LINE_CROSSING.value: "crosser", WALK: "walker"}
STAYING_ROLES = frozenset({"loiterer", "member"})  # meant to stay in the zone
OFFSCREEN_PAD_PX = 4.0  # people start and end this far beyond the point where they are unseen
ZONE_POINT_TRIES = 1000  # rejection sampling of points in the zone; a sliver of a zone needs many


class PlanError(Exception):
    """No path satisfying the gaps was found; ``str()`` names the person and the constraint."""


@dataclass(frozen=True, slots=True)
class Cast:
    """What a clip is planned with: the scene, the people available to paste, the zone.

    Attributes:
        stage: scene geometry.
        crops: person crops.
        zone_px: float32 (k, 2): the loitering zone in pixels.
    """

    stage: Stage
    crops: tuple[PersonCrop, ...]
    zone_px: np.ndarray

    def in_zone(self, point: tuple[float, float]) -> bool:
        return bool(cv2.pointPolygonTest(self.zone_px, (float(point[0]), float(point[1])), False) > 0)

    def frames_in_zone(self, segment: Segment) -> int:
        return sum(self.in_zone(p) for p in zip(segment.x, segment.y, strict=True))

    def feet_frames_in_zone(self, boxes: np.ndarray) -> int:
        """Frames in which the bottom-centre of the box (n, 4), what zone rules test, is inside."""
        return sum(self.in_zone((x, y)) for x, y in foot_points(boxes) if not math.isnan(x))


@dataclass(frozen=True, slots=True)
class Actor:
    """One person in a clip.

    Attributes:
        role: ``faller``, ``runner``, ``loiterer``, ``member`` (of a crowd), ``crosser`` (of
            the whole frame) or ``walker``.
        crop_index: index into the cast's crops.
        trajectory: the motion.
        labelled: whether the clip's annotation is about this person.
        boxes: float (n_frames, 4) box x1, y1, x2, y2 of what is drawn; NaN where absent.
    """

    role: str
    crop_index: int
    trajectory: Trajectory
    labelled: bool
    boxes: np.ndarray


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """A planned clip.

    Attributes:
        name: file name (``<kind>_<seed>_<n>.avi``).
        kind: ``fall``, ``running``, ``loitering``, ``crowd``, ``line_crossing`` or ``walk``.
        n_frames: length in frames.
        fps: frame rate.
        actors: everyone in the clip, the labelled person first.
        fall_frame: first frame of the fall (fall clips only).
        number: the clip's number among the clips of its kind (the ``n`` of its name).
    """

    name: str
    kind: str
    n_frames: int
    fps: float
    actors: tuple[Actor, ...]
    fall_frame: int | None = None
    number: int = 0

    @property
    def labelled(self) -> Actor:
        return self.actors[0]


def trajectory_boxes(trajectory: Trajectory, crop: PersonCrop) -> np.ndarray:
    """Per-frame boxes of a trajectory drawn with ``crop``: float (n, 4), NaN where absent."""
    boxes = np.full((trajectory.n_frames, 4), np.nan)
    for frame in range(trajectory.n_frames):
        pose = trajectory.pose(frame)
        if pose is not None:
            b = pose_box(crop, pose)
            boxes[frame] = (b.x1, b.y1, b.x2, b.y2)
    return boxes


def _last_at_most(f: Callable[[int], int], low: int, high: int, limit: int) -> int:
    """The largest x in [low, high] with f(x) <= limit, for a roughly increasing f (bisection);
    ``low`` when there is none."""
    while low < high:
        middle = (low + high + 1) // 2
        if f(middle) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def plan_clip(
    rng: np.random.Generator, cast: Cast, settings: SynthSettings, kind: str, name: str
) -> ClipSpec:
    """Plan one clip of ``kind``: the labelled person, then the distractor walkers.

    Raises:
        PlanError: no path of the labelled person met the constraints (see ``ClipPlanner``).
    """
    return ClipPlanner(rng, cast, settings).plan(kind, name)


class ClipPlanner:
    """Draws the people of one clip from one random generator (one planner per clip).

    A drawn labelled person is kept only if they stay clear of the static objects, pass through
    the zone briefly (unless loitering), and: a runner is in view ``run_in_view_s``; a faller
    is seen walking ``fall_upright_s`` right before going down and lies inside the frame.
    Otherwise they are drawn again, up to ``plan_tries`` times.

    Args:
        rng: the clip's own generator: the same state always plans the same clip.
        cast: scene, crops, zone.
        settings: ranges to draw from.
    """

    def __init__(self, rng: np.random.Generator, cast: Cast, settings: SynthSettings) -> None:
        self._rng, self._cast, self._settings = rng, cast, settings
        self._stage = cast.stage

    def plan(self, kind: str, name: str) -> ClipSpec:
        """The clip: labelled person first, then as many distractors as fit."""
        s = self._settings
        n_frames = round(s.clip_s * s.fps)
        fall_frame: int | None = None
        problem: str | None = None
        for _ in range(s.plan_tries):
            if kind == EventKind.FALL.value:
                main, fall_frame = self.faller(n_frames)
                labelled = [main]
            elif kind == EventKind.LOITERING.value:
                main, n_frames = self.loiterer()
                labelled = [main]
            elif kind == EventKind.CROWD.value:
                labelled, n_frames = self.crowd()
            elif kind == EventKind.LINE_CROSSING.value:
                labelled = self.crossers(n_frames)
            else:
                labelled = [self.crosser(n_frames, ROLE_FOR_KIND[kind], set(), labelled=True)]
            problem = next(
                (p for a in labelled if (p := self._problem(a, fall_frame)) is not None),
                _too_close(labelled, s.separation_px),
            )
            if problem is None:
                break
        else:
            raise PlanError(f"{name}: no usable {ROLE_FOR_KIND[kind]} path in {s.plan_tries} "
                            f"tries; the last one {problem}")
        actors = list(labelled)
        for _ in range(int(self._rng.integers(s.walkers[0], s.walkers[1] + 1))):
            walker = self.distractor(n_frames, actors)
            if walker is not None:
                actors.append(walker)
        return ClipSpec(name, kind, n_frames, s.fps, tuple(actors), fall_frame)

    # --- the people ----------------------------------------------------------------------------

    def crosser(self, n_frames: int, role: str, taken: set[int], *, labelled: bool) -> Actor:
        """A walker (or runner) crossing the frame, entering at a random time of the clip."""
        s, stage = self._settings, self._stage
        band = s.run_ground_y if role == "runner" else s.ground_y
        first = self._ground_row(band)
        rows = first, self._drifted_row(first, band)
        index = self._choose_crop(stage.height_px(sum(rows) / 2), taken)
        crop = self._cast.crops[index]
        if role == "runner":
            # A tracker matching boxes by overlap loses a target that moves more than about
            # half a box width between frames: cap the speed by the crop's width. And cap it
            # so the crossing lasts run_in_view_s, taking the fewest metres the frame can be
            # wide (at the nearer row) less a box width (a box partly outside is not in view).
            track_cap = s.max_step_box_frac * crop.aspect * s.person_height_m * s.fps
            near = max(rows)
            view_px = stage.width - crop.aspect * stage.height_px(near)
            view_cap = view_px / stage.px_per_m(near) / s.run_in_view_s
            gait = self._gait(s.run_speed_mps, s.run_bob_frac, s.run_step_hz)
            gait = dataclasses.replace(gait, speed_mps=min(gait.speed_mps, track_cap, view_cap))
        else:
            gait = self._gait(s.walk_speed_mps, s.walk_bob_frac, s.walk_step_hz)
        rightwards = bool(self._rng.integers(2))
        route = crossing_route(stage, rows, rightwards, self._margin(crop, max(rows)), gait)
        segment = follow(route, stage, 0)
        length = len(segment.x)
        if role == "crosser":  # the whole crossing inside the clip
            start = int(self._rng.integers(0, max(1, n_frames - length)))
        elif role == "runner":
            earliest = round(s.run_start_s * s.fps)
            latest = max(earliest, n_frames - length - earliest)
            start = int(self._rng.integers(earliest, latest + 1))
        else:  # on their way when the clip starts, or still coming when it ends
            unseen = round(length * (1.0 - s.walker_visible_frac))
            start = int(self._rng.integers(-unseen, max(1 - unseen, n_frames - length + unseen)))
        trajectory = assemble([dataclasses.replace(segment, start_frame=start)], n_frames)
        return self._actor(role, index, trajectory, labelled)

    def faller(self, n_frames: int) -> tuple[Actor, int]:
        """Walks in, falls at a random time at a near spot well inside the frame, lies still
        until the clip ends.

        Returns:
            The actor and the frame the fall starts.
        """
        s, stage, rng = self._settings, self._stage, self._rng
        fall_frame = min(n_frames - 2, round(rng.uniform(*s.fall_at_s) * s.fps))
        foot = (float(rng.uniform(*s.fall_x) * stage.width), self._ground_row(s.fall_ground_y))
        index = self._choose_crop(stage.height_px(foot[1]), set())
        shape = FallShape(
            frames=max(1, round(rng.uniform(*s.fall_s) * s.fps)),
            angle_deg=float(rng.choice([-1.0, 1.0]) * rng.uniform(*s.fall_angle_deg)),
            thickness=s.lying_thickness,
            jitter_px=s.lying_jitter_px,
            jitter_deg=s.lying_jitter_deg,
        )
        gait = self._gait(s.walk_speed_mps, s.walk_bob_frac, s.walk_step_hz)
        margin = self._margin(self._cast.crops[index], foot[1])
        start_x = -margin if rng.integers(2) else stage.width + margin
        start = (start_x, self._drifted_row(foot[1], s.ground_y))
        route = Route((start, foot), (gait.speed_mps,), (0.0, 0.0), gait.bob_frac, gait.step_hz)
        walk = follow(route, stage, 0)
        walk = dataclasses.replace(walk, start_frame=fall_frame - len(walk.x))
        fall = fall_and_lie(foot, range(fall_frame, n_frames), shape, stage, rng)
        trajectory = assemble([walk, fall], n_frames)
        return self._actor("faller", index, trajectory, True), fall_frame

    def loiterer(self) -> tuple[Actor, int]:
        """Walks into the zone, strolls about in it for ``loiter_s``, walks off.

        Returns:
            The actor and the clip length in frames (at least ``clip_s``; longer to hold the
            stay and ``loiter_tail_s`` after it).
        """
        s, stage, cast = self._settings, self._stage, self._cast
        index = self._choose_crop(stage.height_px(float(cast.zone_px[:, 1].mean())), set())
        margin = self._margin(cast.crops[index], stage.height)
        stay = round(self._rng.uniform(*s.loiter_s) * s.fps)
        stroll = follow(self._stroll_route(margin, stay / s.fps), stage, 0)
        entered = next(i for i, p in enumerate(zip(stroll.x, stroll.y, strict=True))
                       if cast.in_zone(p))
        gait = self._gait(s.walk_speed_mps, s.walk_bob_frac, s.walk_step_hz)
        target = min(len(stroll.x) - 1, entered + stay)
        # Of two drawn exits take the one out of the zone sooner (a long way across the zone
        # would stretch the stay), and start walking off early by however long the way out
        # takes inside the zone.
        _, exit_point = min(
            (cast.frames_in_zone(self._walk_off(stroll, target, point, gait)), point)
            for point in (self._outside(margin), self._outside(margin))
        )

        def leaves(cut: int) -> int:
            """Last frame in the zone when walking off after frame ``cut``."""
            return cut + cast.frames_in_zone(self._walk_off(stroll, cut, exit_point, gait))

        cut = _last_at_most(leaves, entered, target, target)
        way_out = self._walk_off(stroll, cut, exit_point, gait)
        last_inside = leaves(cut)
        n_frames = max(round(s.clip_s * s.fps), last_inside + 1 + round(s.loiter_tail_s * s.fps))
        trajectory = assemble([head(stroll, cut + 1), way_out], n_frames)
        return self._actor("loiterer", index, trajectory, True), n_frames

    def crossers(self, n_frames: int) -> list[Actor]:
        """``crossers`` people crossing the whole frame (each over the clip's line, if it spans
        the walkway), in different crops; the caller checks that they keep apart."""
        s = self._settings
        people: list[Actor] = []
        for _ in range(int(self._rng.integers(s.crossers[0], s.crossers[1] + 1))):
            taken = {a.crop_index for a in people}
            people.append(self.crosser(n_frames, "crosser", taken, labelled=True))
        return people

    def crowd(self) -> tuple[list[Actor], int]:
        """``crowd_size`` people who walk in from the left-hand edge, each to their own spot
        in the zone, stand there, and walk back out the way they came.

        They come from the far side of the frame from the zone (vtest's zone is on the right),
        so each is seen walking well before standing still: a track that starts only once its
        person stands is an object that never moved (no alert, no count). The one with the
        rightmost spot arrives first and leaves last, the one with the leftmost spot arrives
        last and leaves first: nobody walks past someone standing, which would merge two boxes
        into one. All of them are there for ``crowd_stay_s``.

        Returns:
            The people (arrival order) and the clip length in frames.
        """
        s, stage, rng = self._settings, self._stage, self._rng
        rows = (s.crowd_ground_y[0] * stage.height, s.crowd_ground_y[1] * stage.height)
        spots = sorted((self._zone_point(rows) for _ in range(s.crowd_size)),
                       key=lambda p: p[0], reverse=True)
        gait = self._gait(s.walk_speed_mps, s.walk_bob_frac, s.walk_step_hz)
        crops: list[int] = []
        for _, row in spots:
            crops.append(self._choose_crop(stage.height_px(row), set(crops)))
        entries = [(-self._margin(self._cast.crops[c], row), row)
                   for c, (_, row) in zip(crops, spots, strict=True)]
        walks = [len(follow(Route((entry, spot), (gait.speed_mps,), (0.0, 0.0), gait.bob_frac,
                                  gait.step_hz), stage, 0).x)
                 for entry, spot in zip(entries, spots, strict=True)]
        # Arrival frames (at the spot), then departure frames, last arrival first to leave.
        arrivals = [walks[0] + round(s.fps)]
        for walk in walks[1:]:
            arrivals.append(max(arrivals[-1] + round(rng.uniform(*s.crowd_gap_s) * s.fps),
                                walk + 1))
        departures = [arrivals[-1] + round(rng.uniform(*s.crowd_stay_s) * s.fps)]
        for _ in spots[1:]:
            departures.insert(0, departures[0] + round(rng.uniform(*s.crowd_gap_s) * s.fps))
        people, end = [], 0
        for crop, entry, spot, walk, arrive, leave in zip(
            crops, entries, spots, walks, arrivals, departures, strict=True
        ):
            route = Route((entry, spot, entry), (gait.speed_mps, gait.speed_mps),
                          (0.0, (leave - arrive) / s.fps, 0.0), gait.bob_frac, gait.step_hz)
            segment = dataclasses.replace(follow(route, stage, 0), start_frame=arrive - walk)
            end = max(end, segment.end_frame)
            people.append((crop, segment))
        n_frames = max(round(s.clip_s * s.fps), end + round(s.fps))
        return [self._actor("member", crop, assemble([segment], n_frames), True)
                for crop, segment in people], n_frames

    def distractor(self, n_frames: int, actors: list[Actor]) -> Actor | None:
        """A walker keeping ``separation_px`` from everyone and passing through the zone in
        ``zone_pass_s`` at most (a lingering one would loiter), or None after ``plan_tries``."""
        s = self._settings
        taken = {a.crop_index for a in actors}
        for _ in range(s.plan_tries):
            walker = self.crosser(n_frames, "walker", taken, labelled=False)
            if np.isnan(walker.boxes[:, 0]).all():
                continue  # never in view
            if self._cast.feet_frames_in_zone(walker.boxes) > round(s.zone_pass_s * s.fps):
                continue
            if not any(boxes_near(walker.boxes, a.boxes, s.separation_px).any() for a in actors):
                return walker
        return None

    # --- loitering paths -----------------------------------------------------------------------

    def _stroll_route(self, margin: float, stay_s: float) -> Route:
        """From outside the frame (seen walking ``loiter_approach_m`` when the drawn entry
        allows) to spot after spot in the zone, for well over ``stay_s`` (the caller cuts it)."""
        s, rng = self._settings, self._rng
        walk = self._gait(s.walk_speed_mps, s.walk_bob_frac, s.walk_step_hz)
        stroll = float(rng.uniform(*s.loiter_speed_mps))
        first = self._zone_point()
        start = self._outside(margin)
        for _ in range(s.plan_tries):
            if self._approach_m(start, first) >= s.loiter_approach_m:
                break
            start = self._outside(margin)
        points = [start, first]
        speeds, pauses = [walk.speed_mps], [0.0, float(rng.uniform(*s.loiter_pause_s))]
        planned_s = pauses[-1]
        while planned_s < 2.0 * stay_s:  # twice: the stroll is cut where the stay ends
            here, there = points[-1], self._zone_point()
            metres = math.dist(here, there) / self._stage.px_per_m((here[1] + there[1]) / 2)
            points.append(there)
            speeds.append(stroll)
            pauses.append(float(rng.uniform(*s.loiter_pause_s)))
            planned_s += metres / stroll + pauses[-1]
        return Route(tuple(points), tuple(speeds), tuple(pauses), walk.bob_frac, walk.step_hz)

    def _walk_off(self, stroll: Segment, cut: int, exit_point: tuple[float, float],
                  gait: Gait) -> Segment:
        """The walk from where ``stroll`` is at frame ``cut`` to ``exit_point``, from cut + 1."""
        here = (float(stroll.x[cut]), float(stroll.y[cut]))
        route = Route((here, exit_point), (gait.speed_mps,), (0.0, 0.0), gait.bob_frac,
                      gait.step_hz)
        return dataclasses.replace(follow(route, self._stage, 0), start_frame=cut + 1)

    def _zone_point(self, rows: tuple[float, float] | None = None) -> tuple[float, float]:
        """A random point at least ``zone_margin_px`` inside the zone (and between ``rows``,
        pixels, when given)."""
        zone, margin = self._cast.zone_px, self._settings.zone_margin_px
        low, high = zone.min(axis=0), zone.max(axis=0)
        if rows is not None:
            low, high = low.copy(), high.copy()
            low[1], high[1] = max(low[1], rows[0]), min(high[1], rows[1])
        for _ in range(ZONE_POINT_TRIES):
            x, y = (float(v) for v in self._rng.uniform(low, high))
            if cv2.pointPolygonTest(zone, (x, y), True) >= margin:
                return x, y
        raise PlanError(f"no point {margin} px inside the zone {self._settings.zone}")

    def _approach_m(self, start: tuple[float, float], first: tuple[float, float]) -> float:
        """Metres walked in view and outside the zone on the straight line start -> first."""
        steps = max(2, math.ceil(math.dist(start, first)))
        step_px = math.dist(start, first) / (steps - 1)
        metres = 0.0
        for x, y in zip(np.linspace(start[0], first[0], steps),
                        np.linspace(start[1], first[1], steps), strict=True):
            if self._cast.in_zone((x, y)):
                break
            if 0 <= x <= self._stage.width:
                metres += step_px / self._stage.px_per_m(y)
        return metres

    # --- small draws ---------------------------------------------------------------------------

    def _problem(self, actor: Actor, fall_frame: int | None) -> str | None:
        """What makes the labelled person's motion unusable (see the class), or None."""
        s, stage, boxes = self._settings, self._stage, actor.boxes
        for o in stage.obstacles:
            fixed = np.tile([o.x1, o.y1, o.x2, o.y2], (len(boxes), 1))
            if boxes_near(boxes, fixed, s.obstacle_gap_px).any():
                return f"came within obstacle_gap_px={s.obstacle_gap_px} of the static object {o}"
        if actor.role not in STAYING_ROLES and (
            self._cast.feet_frames_in_zone(boxes) > round(s.zone_pass_s * s.fps)
        ):
            return f"stayed in the zone longer than zone_pass_s={s.zone_pass_s}"
        seen = in_view(boxes, stage.width, stage.height, s.in_view_frac)
        if actor.role == "runner" and seen.sum() < round(s.run_in_view_s * s.fps):
            return f"was in view for less than run_in_view_s={s.run_in_view_s}"
        if actor.role == "faller" and fall_frame is not None:
            if not inside_frame(boxes[fall_frame:], stage.width, stage.height,
                                s.edge_margin_px).all():
                return f"fell closer than edge_margin_px={s.edge_margin_px} to the frame's edge"
            upright = round(s.fall_upright_s * s.fps)
            if fall_frame < upright or not seen[fall_frame - upright:fall_frame].all():
                return f"was seen walking for less than fall_upright_s={s.fall_upright_s}"
        return None

    def _choose_crop(self, height_px: float, taken: set[int]) -> int:
        """A crop close in size to ``height_px`` (least scaling, least blur), not yet in the clip."""
        crops = self._cast.crops
        order = sorted(range(len(crops)), key=lambda i: abs(math.log(crops[i].height_px / height_px)))
        free = [i for i in order if i not in taken] or order
        return free[int(self._rng.integers(min(self._settings.crop_choices, len(free))))]

    def _gait(self, speed: tuple[float, float], bob: float, hz: float) -> Gait:
        return Gait(float(self._rng.uniform(*speed)), bob, hz)

    def _ground_row(self, band: tuple[float, float]) -> float:
        """A random foot row (pixels) in ``band`` (normalised rows)."""
        return float(self._rng.uniform(*band) * self._stage.height)

    def _drifted_row(self, row: float, band: tuple[float, float]) -> float:
        """Where a path starting at ``row`` ends: drifted up to ``max_drift_y``, kept in ``band``."""
        low, high = (g * self._stage.height for g in band)
        drift = self._rng.uniform(-1.0, 1.0) * self._settings.max_drift_y * self._stage.height
        return float(np.clip(row + drift, low, high))

    def _outside(self, margin: float) -> tuple[float, float]:
        """A point just beyond the left or right side of the frame, at a walkable row."""
        side = -margin if self._rng.integers(2) else self._stage.width + margin
        return float(side), self._ground_row(self._settings.ground_y)

    def _margin(self, crop: PersonCrop, row: float) -> float:
        """How far outside the frame a person is unseen: a whole box width plus a little."""
        return crop.aspect * self._stage.height_px(row) + OFFSCREEN_PAD_PX

    def _actor(self, role: str, crop_index: int, trajectory: Trajectory, labelled: bool) -> Actor:
        boxes = trajectory_boxes(trajectory, self._cast.crops[crop_index])
        return Actor(role, crop_index, trajectory, labelled, boxes)


def _too_close(people: list[Actor], gap: float) -> str | None:
    """Which two of the labelled people come closer than ``gap`` (their boxes would merge)."""
    for i, a in enumerate(people):
        for b in people[i + 1:]:
            if boxes_near(a.boxes, b.boxes, gap).any():
                return f"had two of its people within separation_px={gap} of each other"
    return None
