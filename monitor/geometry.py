"""Plain box geometry shared by the motion and region stages."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.types import Box


def overlap(a: Box, b: Box) -> bool:
    """True when the two boxes share some area (touching edges do not count)."""
    return a.x1 < b.x2 and b.x1 < a.x2 and a.y1 < b.y2 and b.y1 < a.y2


def merge_overlapping(boxes: Sequence[Box]) -> list[Box]:
    """Replace boxes that overlap by their bounding box until none overlap (a person on the
    edge between two crops would otherwise be cut in two)."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if overlap(a, b):
                    merged[i] = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2),
                                    max(a.y2, b.y2))
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes, 0..1 (0 when either has no area)."""
    width = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    height = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    shared = width * height
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - shared
    return shared / union if union > 0 else 0.0
