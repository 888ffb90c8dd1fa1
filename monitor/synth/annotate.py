"""Ground truth of a planned clip: the event intervals, measured on the boxes that are drawn.

Intervals are half-open, in seconds from the clip's first frame: ``start`` = first frame / fps,
``end`` = (last frame + 1) / fps, so an event lasting to the final frame ends at the clip's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.events.zones import Zone
from monitor.synth.boxes import foot_points, in_view
from monitor.synth.plan import ClipSpec
from monitor.types import EventKind, kinds_where

EVENT_KINDS: tuple[str, ...] = kinds_where(evaluated=True)


@dataclass(frozen=True, slots=True)
class Annotation:
    """One labelled interval of one clip (a row of annotations.json)."""

    clip: str
    kind: str
    start: float
    end: float

    def as_json(self) -> dict[str, str | float]:
        return {"clip": self.clip, "kind": self.kind, "start": self.start, "end": self.end}


def feet_in_zone(boxes: np.ndarray, zone: Zone, width: int, height: int) -> np.ndarray:
    """Per frame, whether the box's bottom-centre lies in the zone (False where absent)."""
    inside = np.zeros(len(boxes), dtype=bool)
    for frame, (x, y) in enumerate(foot_points(boxes)):
        if not np.isnan(x):
            inside[frame] = zone.contains(x, y, width, height)
    return inside


def _interval(flags: np.ndarray, fps: float) -> tuple[float, float] | None:
    frames = np.flatnonzero(flags)
    if len(frames) == 0:
        return None
    return round(frames[0] / fps, 3), round((frames[-1] + 1) / fps, 3)


def annotate(
    spec: ClipSpec, zone: Zone, frame_size: tuple[int, int], min_in_view: float
) -> list[Annotation]:
    """The event rows of one clip (none for ``walk`` clips).

    Args:
        spec: the planned clip.
        zone: the loitering zone.
        frame_size: (width, height) in pixels.
        min_in_view: a runner counts as in view when this fraction of their box is inside.

    Returns:
        At most one row: fall (from the first frame of the fall to the end of the clip),
        running (while the runner is in view) or loitering (while the feet are in the zone).
    """
    width, height = frame_size
    boxes = spec.labelled.boxes
    interval: tuple[float, float] | None = None
    if spec.kind == EventKind.FALL.value and spec.fall_frame is not None:
        interval = round(spec.fall_frame / spec.fps, 3), round(spec.n_frames / spec.fps, 3)
    elif spec.kind == EventKind.RUNNING.value:
        interval = _interval(in_view(boxes, width, height, min_in_view), spec.fps)
    elif spec.kind == EventKind.LOITERING.value:
        interval = _interval(feet_in_zone(boxes, zone, width, height), spec.fps)
    if interval is None:
        return []
    return [Annotation(spec.name, spec.kind, *interval)]


def occupancy(
    spec: ClipSpec, zone: Zone, frame_size: tuple[int, int], min_in_view: float
) -> dict[str, object]:
    """Per frame, how many people are in view and how many have their feet in the zone: the
    truth the retained counts (``{prefix}/{camera}/{label}``, ``.../{zone}/{label}``) are
    checked against. Written beside each clip as ``<clip>.people.json``.

    Returns:
        ``{"clip", "fps", "zone", "in_view": [int per frame], "in_zone": [int per frame]}``.
    """
    width, height = frame_size
    visible = np.zeros(spec.n_frames, dtype=int)
    inside = np.zeros(spec.n_frames, dtype=int)
    for actor in spec.actors:
        visible += in_view(actor.boxes, width, height, min_in_view)
        inside += feet_in_zone(actor.boxes, zone, width, height)
    return {"clip": spec.name, "fps": spec.fps, "zone": [list(p) for p in zone.polygon],
            "in_view": visible.tolist(), "in_zone": inside.tolist()}
