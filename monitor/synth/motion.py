"""Planned motion: where each person's foot is, how tall and how tilted, frame by frame.

Everything is in frame pixels, planned per frame at the clip's rate. A route is a polyline walked
at a speed in metres per second; the local pixel scale comes from the perspective, so a person
slows down in pixels as they walk away from the camera, as in real footage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.synth.crops import Perspective
from monitor.synth.render import Pose
from monitor.types import Box


@dataclass(frozen=True, slots=True)
class Stage:
    """The scene people move in.

    Attributes:
        width, height: frame size in pixels.
        fps: frames per second the motion is planned at.
        perspective: standing person height (pixels) from the foot row.
        person_height_m: real height of a standing person.
        obstacles: boxes of static things the detector sees in the empty scene.
    """

    width: int
    height: int
    fps: float
    perspective: Perspective
    person_height_m: float
    obstacles: tuple[Box, ...]

    def height_px(self, y: float) -> float:
        return float(self.perspective.height_at(y))

    def px_per_m(self, y: float) -> float:
        return self.height_px(y) / self.person_height_m


@dataclass(frozen=True, slots=True)
class Gait:
    """How one person walks: speed, and the vertical bounce of each step."""

    speed_mps: float
    bob_frac: float
    step_hz: float


@dataclass(frozen=True, slots=True)
class Route:
    """A polyline walked at a speed per segment, with a pause on arriving at each vertex.

    Attributes:
        points: (x, y) ground points in pixels; the first is where the person starts.
        speeds_mps: one speed per segment (``len(points) - 1``).
        pauses_s: standing time on arriving at each point (``len(points)``; the first unused).
        bob_frac: vertical gait bounce, fraction of the person height.
        step_hz: bounces per second.
    """

    points: tuple[tuple[float, float], ...]
    speeds_mps: tuple[float, ...]
    pauses_s: tuple[float, ...]
    bob_frac: float
    step_hz: float


@dataclass(frozen=True, slots=True)
class Trajectory:
    """One person over a whole clip: float arrays of length ``n_frames``; NaN x = not in the scene.

    Attributes:
        x, y: ground point (pixels).
        height_px: standing height the crop is scaled to.
        angle_deg: rotation about the foot point (0 upright, about +-90 lying).
        lift_px: gait bounce above the ground point.
        thickness: scale across the body.
    """

    x: np.ndarray
    y: np.ndarray
    height_px: np.ndarray
    angle_deg: np.ndarray
    lift_px: np.ndarray
    thickness: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.x)

    def present(self, frame: int) -> bool:
        return not math.isnan(float(self.x[frame]))

    def pose(self, frame: int) -> Pose | None:
        """The pose at ``frame``, or None when the person is not in the scene."""
        if not self.present(frame):
            return None
        return Pose(float(self.x[frame]), float(self.y[frame]), float(self.height_px[frame]),
                    float(self.angle_deg[frame]), float(self.lift_px[frame]),
                    float(self.thickness[frame]))


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of motion: consecutive frames from ``start_frame`` (which may be negative)."""

    start_frame: int
    x: np.ndarray
    y: np.ndarray
    height_px: np.ndarray
    angle_deg: np.ndarray
    lift_px: np.ndarray
    thickness: np.ndarray

    @property
    def end_frame(self) -> int:
        """One past the last frame."""
        return self.start_frame + len(self.x)


def follow(route: Route, stage: Stage, start_frame: int) -> Segment:
    """Walk ``route`` from ``start_frame``, one position per frame, until its last point.

    Returns:
        The positions; the last frame is at the route's last point.
    """
    xs: list[float] = []
    ys: list[float] = []
    lifts: list[float] = []
    x, y = route.points[0]
    walked_s = 0.0  # time spent moving: the gait phase, which stands still during pauses
    for target, speed, pause in zip(route.points[1:], route.speeds_mps, route.pauses_s[1:],
                                    strict=True):
        while True:
            step = speed * stage.px_per_m(y) / stage.fps
            dx, dy = target[0] - x, target[1] - y
            distance = math.hypot(dx, dy)
            if distance <= step:
                x, y = target
            else:
                x, y = x + dx / distance * step, y + dy / distance * step
            walked_s += 1.0 / stage.fps
            xs.append(x)
            ys.append(y)
            bounce = abs(math.sin(math.pi * route.step_hz * walked_s))
            lifts.append(route.bob_frac * stage.height_px(y) * bounce)
            if distance <= step:
                break
        for _ in range(round(pause * stage.fps)):
            xs.append(x)
            ys.append(y)
            lifts.append(0.0)
    if not xs:
        xs, ys, lifts = [x], [y], [0.0]
    x_arr, y_arr = np.array(xs), np.array(ys)
    heights = np.asarray(stage.perspective.height_at(y_arr), dtype=np.float64)
    zeros = np.zeros_like(x_arr)
    return Segment(start_frame, x_arr, y_arr, heights, zeros, np.array(lifts), np.ones_like(x_arr))


@dataclass(frozen=True, slots=True)
class FallShape:
    """How one fall goes.

    Attributes:
        frames: frames from upright to lying.
        angle_deg: final rotation (sign = direction).
        thickness: final scale across the body.
        jitter_px, jitter_deg: per-frame noise while lying.
    """

    frames: int
    angle_deg: float
    thickness: float
    jitter_px: float
    jitter_deg: float


def fall_and_lie(
    foot: tuple[float, float], frames: range, fall: FallShape, stage: Stage,
    rng: np.random.Generator,
) -> Segment:
    """Topple about the foot point over ``fall.frames`` frames, then lie still.

    Rotating about the foot brings the body down to the ground by itself; the rotation speeds
    up like a toppling body (the angle grows with the square of time).

    Args:
        foot: ground point the person falls at (pixels).
        frames: the clip frames from the first frame of the fall to the last one of the clip.
        fall: how the fall goes.
        stage: the scene (for the person's height at the foot row).
        rng: draws the tiny movement while lying.
    """
    count = max(1, len(frames))
    progress = np.minimum(1.0, (np.arange(count) + 1) / max(1, fall.frames)) ** 2
    lying = progress >= 1.0
    angle = fall.angle_deg * progress + lying * rng.normal(0.0, fall.jitter_deg, count)
    x = foot[0] + lying * rng.normal(0.0, fall.jitter_px, count)
    y = foot[1] + lying * rng.normal(0.0, fall.jitter_px, count)
    height = np.full(count, stage.height_px(foot[1]))
    thickness = 1.0 + (fall.thickness - 1.0) * progress
    return Segment(frames.start, x, y, height, angle, np.zeros(count), thickness)


def head(segment: Segment, count: int) -> Segment:
    """The first ``count`` frames of ``segment``."""
    return Segment(segment.start_frame, segment.x[:count], segment.y[:count],
                   segment.height_px[:count], segment.angle_deg[:count], segment.lift_px[:count],
                   segment.thickness[:count])


def assemble(segments: list[Segment], n_frames: int) -> Trajectory:
    """Lay segments onto a clip of ``n_frames``; later segments win where they overlap."""
    arrays = {name: np.full(n_frames, np.nan) for name in
              ("x", "y", "height_px", "angle_deg", "lift_px", "thickness")}
    for segment in segments:
        lo, hi = max(0, segment.start_frame), min(n_frames, segment.end_frame)
        if lo >= hi:
            continue
        offset = lo - segment.start_frame
        for name, array in arrays.items():
            array[lo:hi] = getattr(segment, name)[offset:offset + hi - lo]
    return Trajectory(**arrays)


def crossing_route(
    stage: Stage, rows: tuple[float, float], rightwards: bool, margin_px: float, gait: Gait
) -> Route:
    """A straight walk from just outside one side of the frame to just outside the other.

    Args:
        stage: the scene.
        rows: foot row (pixels) at the start and at the end.
        rightwards: direction of the walk.
        margin_px: how far outside the frame the route starts and ends (half a box width or
            more, so the person enters and leaves completely).
        gait: speed and bounce.
    """
    left, right = -margin_px, stage.width + margin_px
    xs = (left, right) if rightwards else (right, left)
    return Route(((xs[0], rows[0]), (xs[1], rows[1])), (gait.speed_mps,), (0.0, 0.0),
                 gait.bob_frac, gait.step_hz)
