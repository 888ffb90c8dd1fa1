"""A clean background plate: the per-pixel median of frames spread over the whole footage.

People keep moving in a fixed-camera scene, so at any pixel the scene itself is what most frames
show; the median keeps it and drops passers-by. Things that never move (parked cars, the yellow
object lying on vtest's lawn) stay: they are part of the scene.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def median_background(frames: Sequence[np.ndarray]) -> np.ndarray:
    """The per-pixel, per-channel median of ``frames``.

    Args:
        frames: BGR uint8 images (H, W, 3), all the same size; spread over the video so that
            every pixel is free of people in more than half of them.

    Returns:
        A BGR uint8 image (H, W, 3).

    Raises:
        ValueError: no frames, or frames of different sizes.
    """
    if not frames:
        raise ValueError("median_background needs at least one frame")
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames differ in size: {sorted(shapes)}")
    stack = np.stack(frames)
    # partition finds the middle element without a full sort and keeps uint8 (np.median would
    # make a float64 copy eight times the size of the stack).
    middle = len(frames) // 2
    upper: np.ndarray = np.partition(stack, middle, axis=0)[middle]
    if len(frames) % 2:
        return upper
    lower: np.ndarray = np.partition(stack, middle - 1, axis=0)[middle - 1]
    mean: np.ndarray = ((lower.astype(np.uint16) + upper) // 2).astype(np.uint8)
    return mean
