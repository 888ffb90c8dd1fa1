"""Ground truth of a planned clip: the event intervals, measured on the boxes that are drawn.

Intervals are half-open, in seconds from the clip's first frame: ``start`` = first frame / fps,
``end`` = (last frame + 1) / fps, so an event lasting to the final frame ends at the clip's length.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.evaluate.annotations import moment_span
from monitor.events.lines import Line, LineCounter
from monitor.events.zones import Zone
from monitor.synth.boxes import foot_points, in_view
from monitor.synth.plan import ClipSpec
from monitor.synth.settings import SynthSettings
from monitor.types import (
    AlertType, Box, Direction, EventKind, Observation, TrackSighting, kinds_where,
)

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # clip time 0 of the truth's counter

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


def crossing_moments(boxes: np.ndarray, line: Line, fps: float,
                     frame_size: tuple[int, int]) -> list[tuple[float, Direction]]:
    """When (seconds) and which way one person's foot point crossed ``line``: the counter the
    daemon runs (``monitor.events.lines``), on every drawn frame."""
    width, height = frame_size
    counter = LineCounter("truth", [line], ["person"])
    moments: list[tuple[float, Direction]] = []
    for frame, (x1, y1, x2, y2) in enumerate(boxes):
        if np.isnan(x1):
            continue
        at = Observation(_EPOCH + timedelta(seconds=frame / fps), frame / fps, frame,
                         Box(float(x1), float(y1), float(x2), float(y2)), 1.0, "Normal",
                         frozenset())
        sighting = TrackSighting(1, "person", at, True, True)
        for alert in counter.update([sighting], width, height, {1}):
            event = alert.event
            if alert.type is AlertType.START and event.direction is not None:
                moments.append(((event.start_time - _EPOCH).total_seconds(), event.direction))
    return moments


def truth_line(settings: SynthSettings) -> Line:
    return Line("line", settings.line[0], settings.line[1], settings.line_hysteresis,
                frozenset(Direction))


def annotate(
    spec: ClipSpec, zone: Zone, frame_size: tuple[int, int], settings: SynthSettings
) -> list[Annotation]:
    """The event rows of one clip, measured on everyone in it.

    Args:
        spec: the planned clip.
        zone: the zone of loitering and crowds.
        frame_size: (width, height) in pixels.
        settings: ``in_view_frac`` (a runner is in view while this fraction of their box is
            inside), ``loitering_s``, the crowd's size and time, the line.

    Returns:
        fall (from the first frame of the fall to the end of the clip) and running (while the
        runner is in view) for the clip's labelled person; loitering for anyone whose feet stay
        in the zone ``loitering_s`` (first to last frame inside); crowd while at least
        ``crowd_size`` people's feet are in the zone, if for ``crowd_for_s``; a line_crossing
        of ``MOMENT_S`` around every crossing of the line.
    """
    width, height = frame_size
    rows: list[Annotation] = []
    boxes = spec.labelled.boxes
    interval: tuple[float, float] | None = None
    if spec.kind == EventKind.FALL.value and spec.fall_frame is not None:
        interval = round(spec.fall_frame / spec.fps, 3), round(spec.n_frames / spec.fps, 3)
    elif spec.kind == EventKind.RUNNING.value:
        interval = _interval(in_view(boxes, width, height, settings.in_view_frac), spec.fps)
    if interval is not None:
        rows.append(Annotation(spec.name, spec.kind, *interval))
    inside = [feet_in_zone(actor.boxes, zone, width, height) for actor in spec.actors]
    for flags in inside:
        stay = _interval(flags, spec.fps)
        if stay is not None and stay[1] - stay[0] >= settings.loitering_s:
            rows.append(Annotation(spec.name, EventKind.LOITERING.value, *stay))
    crowded = np.sum(inside, axis=0) >= settings.crowd_size if inside else np.zeros(0, bool)
    for run in _runs(crowded):
        if (run[-1] + 1 - run[0]) / spec.fps >= settings.crowd_for_s:
            rows.append(Annotation(spec.name, EventKind.CROWD.value, round(run[0] / spec.fps, 3),
                                   round((run[-1] + 1) / spec.fps, 3)))
    line = truth_line(settings)
    for actor in spec.actors:
        for at_s, _ in crossing_moments(actor.boxes, line, spec.fps, frame_size):
            rows.append(Annotation(spec.name, EventKind.LINE_CROSSING.value, *moment_span(at_s)))
    return sorted(rows, key=lambda row: (row.start, row.kind))


def _runs(flags: np.ndarray) -> list[np.ndarray]:
    """The frame numbers of each run of True, in order."""
    frames = np.flatnonzero(flags)
    if len(frames) == 0:
        return []
    return np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1)


def occupancy(
    spec: ClipSpec, zone: Zone, line: Line, frame_size: tuple[int, int], min_in_view: float
) -> dict[str, object]:
    """Per frame, how many people are in view and how many have their feet in the zone: the
    truth the retained counts (``{prefix}/{camera}/{label}``, ``.../{zone}/{label}``) are
    checked against. Written beside each clip as ``<clip>.people.json``.

    Returns:
        ``{"clip", "fps", "zone", "in_view": [int per frame], "in_zone": [int per frame],
        "line", "crossings": {"in": n, "out": n}}``.
    """
    width, height = frame_size
    visible = np.zeros(spec.n_frames, dtype=int)
    inside = np.zeros(spec.n_frames, dtype=int)
    for actor in spec.actors:
        visible += in_view(actor.boxes, width, height, min_in_view)
        inside += feet_in_zone(actor.boxes, zone, width, height)
    crossed = Counter(direction.value for actor in spec.actors
                      for _, direction in crossing_moments(actor.boxes, line, spec.fps, frame_size))
    return {"clip": spec.name, "fps": spec.fps, "zone": [list(p) for p in zone.polygon],
            "in_view": visible.tolist(), "in_zone": inside.tolist(),
            "line": [list(p) for p in (line.a, line.b)],
            "crossings": {d.value: crossed[d.value] for d in Direction}}
