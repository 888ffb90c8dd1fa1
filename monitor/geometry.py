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
