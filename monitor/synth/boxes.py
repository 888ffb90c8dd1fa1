"""Per-frame arithmetic on one person's boxes, shared by planning and annotation.

A person's boxes are a float array (n_frames, 4) of x1, y1, x2, y2 in frame pixels, NaN in the
frames they are absent; every function here answers per frame and counts an absent frame as
False.
"""

from __future__ import annotations

import numpy as np


def boxes_near(a: np.ndarray, b: np.ndarray, gap: float) -> np.ndarray:
    """Per frame, whether boxes ``a`` and ``b`` (n, 4) come closer than ``gap`` pixels."""
    with np.errstate(invalid="ignore"):
        return np.asarray(
            (a[:, 0] - gap < b[:, 2]) & (b[:, 0] - gap < a[:, 2])
            & (a[:, 1] - gap < b[:, 3]) & (b[:, 1] - gap < a[:, 3])
        )


def in_view(boxes: np.ndarray, width: int, height: int, min_fraction: float) -> np.ndarray:
    """Per frame, whether at least ``min_fraction`` of the box lies inside the frame."""
    with np.errstate(invalid="ignore"):
        inner_w = np.clip(boxes[:, 2], 0, width) - np.clip(boxes[:, 0], 0, width)
        inner_h = np.clip(boxes[:, 3], 0, height) - np.clip(boxes[:, 1], 0, height)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        return np.asarray(inner_w * inner_h >= min_fraction * area)


def inside_frame(boxes: np.ndarray, width: int, height: int, margin_px: float) -> np.ndarray:
    """Per frame, whether the whole box keeps ``margin_px`` from every edge of the frame."""
    with np.errstate(invalid="ignore"):
        return np.asarray(
            (boxes[:, 0] >= margin_px) & (boxes[:, 2] <= width - margin_px)
            & (boxes[:, 1] >= margin_px) & (boxes[:, 3] <= height - margin_px)
        )


def foot_points(boxes: np.ndarray) -> np.ndarray:
    """The bottom-centre of each box, float (n, 2), NaN where absent: the point zone rules test
    (for a lying person it is the middle of the body, not the planned ground point)."""
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2.0, boxes[:, 3]], axis=1)
