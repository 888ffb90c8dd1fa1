"""Per-track feature windows: a track's recent observations -> a fixed (window, features) array.

Detections arrive at an irregular rate (the detector serves many cameras), so the history is
resampled onto a regular grid of ``step_s`` ending at the newest observation. A grid step with
no observation within ``step_s`` carries the last known box forward and is flagged ``missing``,
so the model sees occlusions and dropped detections instead of a silently stretched track.

Positions and sizes are normalised by the frame's width and height, so one model serves cameras
of any resolution; velocities are in frame-widths (or -heights) per second. ``speed`` is the foot
point's speed in the person's own heights per second: a runner covers about two body heights a
second whether near the camera or far from it, which frame-relative velocity cannot tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.events.lifecycle import Observation

FEATURES: tuple[str, ...] = (
    "cx", "cy", "w", "h", "aspect", "vx", "vy", "speed", "score", "fall", "in_zone", "missing",
)
"""Feature names in column order; a checkpoint stores this and must match it exactly."""

FEATURES_VERSION = 2
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
    times = np.array([o.monotonic for o in history])
    grid = times[-1] - spec.step_s * np.arange(spec.window - 1, -1, -1)
    # For each grid time, the newest observation at or before it.
    tolerance = spec.step_s * 1e-6  # grid times are sums of floats: 1.8 - 9 * 0.2 != 0.0
    index = np.clip(np.searchsorted(times, grid + tolerance, side="right") - 1, 0, len(history) - 1)
    age = grid - times[index]
    missing = (age > spec.step_s - tolerance) | (grid < times[0] - tolerance)

    boxes = np.array([[o.box.x1, o.box.y1, o.box.x2, o.box.y2] for o in history])[index]
    w = (boxes[:, 2] - boxes[:, 0]) / width
    h = (boxes[:, 3] - boxes[:, 1]) / height
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / width
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / height
    aspect = np.clip((h * height) / np.maximum(w * width, 1e-6), 0.0, _ASPECT_MAX)
    vx = np.diff(cx, prepend=cx[0]) / spec.step_s
    vy = np.diff(cy, prepend=cy[0]) / spec.step_s
    foot_x = cx * width
    foot_y = boxes[:, 3]
    height_px = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    speed = np.hypot(np.diff(foot_x, prepend=foot_x[0]), np.diff(foot_y, prepend=foot_y[0]))
    speed = speed / height_px / spec.step_s
    score = np.array([o.score for o in history])[index]
    fall = np.array([o.class_name == "Fall" for o in history], dtype=float)[index]
    in_zone = np.array([bool(o.zones) for o in history], dtype=float)[index]
    columns = {
        "cx": cx, "cy": cy, "w": w, "h": h, "aspect": aspect, "vx": vx, "vy": vy, "speed": speed,
        "score": np.where(missing, 0.0, score), "fall": fall, "in_zone": in_zone,
        "missing": missing.astype(float),
    }
    return np.stack([columns[name] for name in spec.features], axis=1).astype(np.float32)
