"""Per-track feature windows: a track's recent observations -> a fixed (window, features) array.

Detections arrive at an irregular rate (the detector serves many cameras), so the history is
resampled onto a regular grid of ``step_s`` ending at the newest observation. A grid step with
no observation within ``step_s`` carries the last known box forward and is flagged ``missing``,
so the model sees occlusions and dropped detections instead of a silently stretched track.

Positions and sizes are normalised by the frame's width and height, so one model serves cameras
of any resolution; velocities are in frame-widths (or -heights) per second. ``speed`` is the foot
point's speed in the person's own heights per second: a runner covers about two body heights a
second whether near the camera or far from it, which frame-relative velocity cannot tell.
``speed_1s`` is the same over the last second (foot displacement over about one second, divided
by the mean box height): real detector boxes flicker in size from frame to frame, which makes the
per-step speed of a walker spike to a runner's now and then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.types import Observation

FEATURES: tuple[str, ...] = (
    "cx", "cy", "w", "h", "aspect", "vx", "vy", "speed", "speed_1s", "score", "fall", "in_zone",
    "missing",
)
"""Feature names in column order; a checkpoint stores this and must match it exactly."""

FEATURES_VERSION = 3
"""Bumped whenever what a feature *means* changes (a checkpoint trained on other semantics with
the same names would be silently wrong): checkpoints store it and must match it."""

_ASPECT_MAX = 6.0  # height/width of a person standing far away is ~3; cap outliers


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How a window is built; stored in checkpoints so training and serving agree.

    Attributes:
        window: steps per window.
        step_s: seconds between steps.
        features: column names, in order.
    """

    window: int
    step_s: float
    features: tuple[str, ...] = FEATURES

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be at least 2 steps, got {self.window}")
        if not self.step_s > 0:
            raise ValueError(f"step_s must be greater than 0, got {self.step_s}")
        unknown = [name for name in self.features if name not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {', '.join(FEATURES)}")


def track_window(
    history: Sequence[Observation], width: int, height: int, spec: FeatureSpec
) -> np.ndarray:
    """Build one track's feature window.

    Args:
        history: the track's observations, oldest first (at least one).
        width: frame width in pixels.
        height: frame height in pixels.
        spec: window length, step and feature order.

    Returns:
        float32 array of shape (spec.window, len(spec.features)); steps before the track's first
        observation repeat it and are flagged missing.
    """
    if not history:
        raise ValueError("a feature window needs at least one observation")
    # Only the tail the grid reaches matters: the newest observation at or before the grid's
    # first time, and everything after it. Tracks keep minutes of history; the window is seconds.
    first_grid = history[-1].monotonic - spec.step_s * (spec.window - 1)
    start = len(history) - 1
    while start > 0 and history[start].monotonic > first_grid + spec.step_s * 1e-6:
        start -= 1
    history = history[start:]
    # One pass over the observations into one array: this runs for every live track at every
    # camera step, where per-field numpy calls would cost more than the network.
    table = np.array(
        [
            (o.monotonic, o.box.x1, o.box.y1, o.box.x2, o.box.y2, o.score,
             o.class_name == "Fall", bool(o.zones))
            for o in history
        ],
        dtype=float,
    )
    times = table[:, 0]
    grid = times[-1] - spec.step_s * np.arange(spec.window - 1, -1, -1)
    # For each grid time, the newest observation at or before it.
    tolerance = spec.step_s * 1e-6  # grid times are sums of floats: 1.8 - 9 * 0.2 != 0.0
    index = np.clip(np.searchsorted(times, grid + tolerance, side="right") - 1, 0, len(history) - 1)
    missing = (grid - times[index] > spec.step_s - tolerance) | (grid < times[0] - tolerance)

    rows = table[index]
    x1, y1, x2, y2 = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
    w = (x2 - x1) / width
    h = (y2 - y1) / height
    cx = (x1 + x2) / 2 / width
    cy = (y1 + y2) / 2 / height
    aspect = np.clip((y2 - y1) / np.maximum(x2 - x1, 1e-6), 0.0, _ASPECT_MAX)
    step = np.zeros((len(grid), 4))  # per-step change of cx, cy, foot x, foot y (first: 0)
    moving = np.stack([cx, cy, cx * width, y2], axis=1)
    step[1:] = moving[1:] - moving[:-1]
    vx = step[:, 0] / spec.step_s
    vy = step[:, 1] / spec.step_s
    speed = np.hypot(step[:, 2], step[:, 3]) / np.maximum(y2 - y1, 1.0) / spec.step_s
    lag = max(1, round(1.0 / spec.step_s))  # steps in about one second
    back = np.maximum(np.arange(len(grid)) - lag, 0)
    elapsed = np.maximum((np.arange(len(grid)) - back) * spec.step_s, spec.step_s)
    foot = moving[:, 2:]
    mean_height = (np.maximum(y2 - y1, 1.0) + np.maximum(y2[back] - y1[back], 1.0)) / 2
    speed_1s = np.hypot(*(foot - foot[back]).T) / mean_height / elapsed
    columns = {
        "cx": cx, "cy": cy, "w": w, "h": h, "aspect": aspect, "vx": vx, "vy": vy, "speed": speed,
        "speed_1s": speed_1s,
        "score": np.where(missing, 0.0, rows[:, 5]), "fall": rows[:, 6], "in_zone": rows[:, 7],
        "missing": missing.astype(float),
    }
    return np.stack([columns[name] for name in spec.features], axis=1).astype(np.float32)
