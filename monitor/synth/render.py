"""Pasting person crops into the background: placement geometry, alpha blending, sensor noise.

A person is drawn as one crop scaled, rotated about its foot point and moved to a ground point;
the same affine map applied to the crop's mask hull gives the exact box of what was drawn, which
is the ground truth the annotations and the checks use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from monitor.synth.crops import PersonCrop
from monitor.types import Box


@dataclass(frozen=True, slots=True)
class Pose:
    """Where and how one person is drawn in one frame.

    Attributes:
        x, y: ground point in frame pixels: where the crop's foot point goes.
        height_px: height the standing crop is scaled to (from the perspective at the ground).
        angle_deg: rotation about the foot point; positive turns the head to the right.
        lift_px: how far the body is raised above the ground point (gait bob), pixels.
        thickness: scale across the body axis (1 = the crop's own width).
    """

    x: float
    y: float
    height_px: float
    angle_deg: float = 0.0
    lift_px: float = 0.0
    thickness: float = 1.0


@dataclass(frozen=True, slots=True)
class Placed:
    """One person to draw: the crop and its pose."""

    crop: PersonCrop
    pose: Pose


def placement(crop: PersonCrop, pose: Pose) -> np.ndarray:
    """The 2x3 affine map from crop pixels to frame pixels for ``pose``."""
    scale = pose.height_px / crop.height_px
    theta = math.radians(pose.angle_deg)
    cos, sin = math.cos(theta), math.sin(theta)
    # Scale (across-body axis by thickness), then rotate; image y points down, so this matrix
    # turns the head (crop -y) towards +x for a positive angle.
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([scale * pose.thickness, scale])
    foot = np.array(crop.foot)
    target = np.array([pose.x, pose.y - pose.lift_px])
    return np.hstack([linear, (target - linear @ foot)[:, None]])


def pose_box(crop: PersonCrop, pose: Pose) -> Box:
    """The box of the person drawn with ``pose`` (in frame pixels, not clipped to the frame)."""
    matrix = placement(crop, pose)
    points = crop.hull.astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    x1, y1 = points.min(axis=0)
    x2, y2 = points.max(axis=0)
    return Box(float(x1), float(y1), float(x2), float(y2))


def _paste(canvas: np.ndarray, crop: PersonCrop, pose: Pose) -> None:
    """Alpha-blend the posed crop into ``canvas`` (float32, H x W x 3), in place."""
    matrix = placement(crop, pose)
    h, w = crop.alpha.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64)
    projected = corners @ matrix[:, :2].T + matrix[:, 2]
    frame_h, frame_w = canvas.shape[:2]
    x0, y0 = (max(0, math.floor(v) - 1) for v in projected.min(axis=0))
    x1 = min(frame_w, math.ceil(projected[:, 0].max()) + 1)
    y1 = min(frame_h, math.ceil(projected[:, 1].max()) + 1)
    if x1 <= x0 or y1 <= y0:
        return  # entirely outside the frame
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    image = cv2.warpAffine(crop.image, local, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    alpha = cv2.warpAffine(crop.alpha, local, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)[..., None]
    region = canvas[y0:y1, x0:x1]
    region += alpha * (image - region)


def render_frame(
    background: np.ndarray,
    people: Sequence[Placed],
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """Draw people over the background, farthest first, and add sensor noise.

    Args:
        background: BGR uint8 (H, W, 3).
        people: who to draw; the ones standing lower in the frame (nearer) are drawn last.
        noise: float32 (H, W, 3) or (H, W, 1) added to every pixel, or None.

    Returns:
        A new BGR uint8 image (H, W, 3).
    """
    canvas = background.astype(np.float32)
    for person in sorted(people, key=lambda p: p.pose.y):
        _paste(canvas, person.crop, person.pose)
    if noise is not None:
        canvas += noise
    image: np.ndarray = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return image


@dataclass(frozen=True, slots=True)
class NoiseBank:
    """Gaussian sensor noise, drawn once per clip and sampled per frame at a random offset.

    Drawing 1.3 million normal numbers costs about 20 ms, more than composing the frame, so a
    few slightly oversized noise frames are drawn up front; each frame adds a random window of
    a random one of them, which no neighbouring frame repeats.

    Attributes:
        frames: float32 (k, H + shift, W + shift, C) noise.
        shift_px: range of the random window offset.
    """

    frames: np.ndarray
    shift_px: int

    @classmethod
    def draw(
        cls, rng: np.random.Generator, shape: tuple[int, ...], sigma: float, count: int,
        shift_px: int,
    ) -> NoiseBank:
        """``count`` noise frames of standard deviation ``sigma`` for images of ``shape``."""
        height, width = shape[:2]
        size = (count, height + shift_px, width + shift_px, *shape[2:])
        return cls(rng.standard_normal(size, dtype=np.float32) * np.float32(sigma), shift_px)

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """A noise image of ``shape`` (a view: do not modify it)."""
        index = int(rng.integers(len(self.frames)))
        dy, dx = (int(v) for v in rng.integers(0, self.shift_px + 1, size=2))
        window: np.ndarray = self.frames[index, dy:dy + shape[0], dx:dx + shape[1]]
        return window
