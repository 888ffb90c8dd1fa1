"""Has a tracked object moved? Box-overlap history per track, as an NVR's stationary classifier.

An object's *anchor* is the median of its boxes since its last position change. A sighting whose
box overlaps the anchor by less than ``stationary_iou`` (intersection over union) is a candidate
move; ``stationary_move_frames`` candidates in a row are a position change, and the anchor starts
again from the new box. An object with no position change for ``stationary_after_s`` is
stationary until it changes position again.

The median anchor and the run of candidates make this robust to what a fixed object's box does
on its own: on vtest.avi the static yellow object on the lawn (a 42 px tall box) keeps an IoU of
at least 0.57 with its median box for 80 s, while people walking at 0.7 body heights a second
fall below 0.5 within two sightings at 3 frames a second.

Frigate's classifier differs: it counts frames rather than seconds (``threshold`` in frames at
the detect fps), and when the box overlap is ambiguous it compares image crops of the object. We
have no image check: the run of candidates plays that role for one-frame glitches (an occluding
passer-by), at the price of noticing a real move one sighting later.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from monitor.types import Box


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either has no area)."""
    width = min(a.x2, b.x2) - max(a.x1, b.x1)
    height = min(a.y2, b.y2) - max(a.y1, b.y1)
    inter = max(0.0, width) * max(0.0, height)
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class MovementSettings:
    """Thresholds of the classifier (from ``[events]``).

    Attributes:
        iou: overlap with the anchor below which a sighting is a candidate move, 0..1.
        move_frames: candidates in a row that make a position change, >= 1.
        after_s: seconds without a position change after which the object is stationary.
        anchor_len: boxes the anchor's median is taken over.
    """

    iou: float
    move_frames: int
    after_s: float
    anchor_len: int


class Movement:
    """One track's movement state; ``update`` once per sighting, oldest first."""

    def __init__(self, settings: MovementSettings, box: Box, monotonic: float) -> None:
        self._settings = settings
        self._anchor: deque[Box] = deque([box], maxlen=settings.anchor_len)
        self._candidates = 0
        self.position_changes = 0
        self.last_moved_monotonic = monotonic
        self._now = monotonic

    @property
    def has_moved(self) -> bool:
        """The object changed position at least once since it appeared."""
        return self.position_changes > 0

    @property
    def stationary(self) -> bool:
        """No position change for ``after_s`` up to the newest sighting."""
        return self._now - self.last_moved_monotonic >= self._settings.after_s

    def update(self, box: Box, monotonic: float) -> None:
        """Take one sighting."""
        self._now = monotonic
        if box_iou(box, self._anchor_box()) >= self._settings.iou:
            self._candidates = 0
            self._anchor.append(box)
            return
        self._candidates += 1
        if self._candidates >= self._settings.move_frames:
            self.position_changes += 1
            self.last_moved_monotonic = monotonic
            self._candidates = 0
            self._anchor.clear()
            self._anchor.append(box)

    def _anchor_box(self) -> Box:
        coords = np.median(np.array([(b.x1, b.y1, b.x2, b.y2) for b in self._anchor]), axis=0)
        return Box(*(float(c) for c in coords))
