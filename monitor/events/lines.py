"""Line crossings: a track's foot point passing over a configured line, counted per label and
direction, each one a ``line_crossing`` event.

Sides are taken in normalised frame coordinates (what the line's points are written in). A foot
point within ``hysteresis`` of the line keeps the side it came from, so a person standing on the
line, whose box jitters, is not counted back and forth. A crossing is a side change whose path
(from the last point clearly on the old side to the first clearly on the new one) passes over the
line segment itself, not its extension. Its moment is interpolated between those two sightings.

Crossings of a track not yet confirmed (or not yet announced: it has not moved as far as the
stationary check is concerned) are held and counted when it is (a person who appears right at
the line still counts); those of a track that never is are dropped. A crossing
is an event that ends as it starts (``EndReason.CROSSED``): its START and END go out together.
Crossings in a direction not in the line's ``alert_directions`` are recorded and counted but not
published (``announced`` False).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta

from monitor.clock import iso_utc
from monitor.config import LineConfig
from monitor.types import (
    Alert, AlertType, Direction, EndReason, Event, EventKind, Observation, TrackSighting,
)

CrossingKey = tuple[str, str, Direction]  # (line, label, direction)


@dataclass(frozen=True, slots=True)
class Line:
    """A line in normalised coordinates; see ``monitor.types.Direction`` for which way is in."""

    name: str
    a: tuple[float, float]
    b: tuple[float, float]
    hysteresis: float
    alert_directions: frozenset[Direction]

    @classmethod
    def from_config(cls, config: LineConfig) -> Line:
        (ax, ay), (bx, by) = config.points
        return cls(config.name, (float(ax), float(ay)), (float(bx), float(by)),
                   config.hysteresis, frozenset(config.alert_directions))

    def signed_distance(self, x: float, y: float) -> float:
        """Distance of (x, y) from the line through a and b; > 0 on its right-hand side as seen
        on screen walking from a to b (image y grows downwards)."""
        (ax, ay), (bx, by) = self.a, self.b
        dx, dy = bx - ax, by - ay
        return float((dx * (y - ay) - dy * (x - ax)) / math.hypot(dx, dy))

    def spans(self, p: tuple[float, float], q: tuple[float, float]) -> bool:
        """Whether the path p -> q (whose ends lie on opposite sides) passes over the segment:
        a and b are not both on the same side of the path."""
        def side(o: tuple[float, float], u: tuple[float, float], v: tuple[float, float]) -> float:
            return (u[0] - o[0]) * (v[1] - o[1]) - (u[1] - o[1]) * (v[0] - o[0])

        return side(p, q, self.a) * side(p, q, self.b) <= 0


@dataclass(slots=True)
class _Side:
    side: int  # +1 right-hand, -1 left-hand
    point: tuple[float, float]
    distance: float
    observation: Observation


@dataclass(frozen=True, slots=True)
class _Crossing:
    line: Line
    direction: Direction
    at: Observation  # the sighting after the crossing, its time interpolated


@dataclass(slots=True)
class _TrackLines:
    sides: dict[str, _Side] = field(default_factory=dict)
    held: list[_Crossing] = field(default_factory=list)  # crossings before confirmation


class LineCounter:
    """One camera's lines: crossing events and running counts.

    Args:
        camera: camera name.
        lines: the camera's lines.
        frame_size: (width, height) in pixels, to normalise foot points; refreshed per frame.
        counted: counts to continue from (the store's, at start-up), ``(line, label,
            direction) -> crossings``.
        new_id: makes event ids.
        snapshot_path: (camera, event id) -> where its snapshot will be written, or None.
    """

    def __init__(
        self,
        camera: str,
        lines: Sequence[Line],
        labels: Sequence[str],
        *,
        counted: Mapping[CrossingKey, int] | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        snapshot_path: Callable[[str, str], str | None] = lambda camera, event_id: None,
    ) -> None:
        self._camera = camera
        self._lines = tuple(lines)
        self._new_id = new_id
        self._snapshot_path = snapshot_path
        self._tracks: dict[int, _TrackLines] = {}
        self._counts: Counter[CrossingKey] = Counter(
            {(line.name, label, d): 0 for line in lines for label in labels for d in Direction}
        )
        # Only this configuration's lines and labels: a removed line's total is not republished.
        self._counts.update({key: n for key, n in (counted or {}).items() if key in self._counts})

    def counts(self) -> dict[CrossingKey, int]:
        """Crossings so far (continued from ``counted``), every line, label and direction."""
        return dict(self._counts)

    def update(
        self, sightings: Sequence[TrackSighting], width: int, height: int, live: set[int]
    ) -> list[Alert]:
        """Take one frame's sightings (``live``: the tracks still followed; the others are
        forgotten, with the crossings they held unconfirmed)."""
        alerts: list[Alert] = []
        for sighting in sightings:
            state = self._tracks.setdefault(sighting.track_id, _TrackLines())
            foot_x, foot_y = sighting.observation.box.foot
            point = (foot_x / width, foot_y / height)
            for line in self._lines:
                crossing = self._step(state, line, point, sighting.observation)
                if crossing is not None:
                    state.held.append(crossing)
            if sighting.confirmed and sighting.announced and state.held:
                for crossing in state.held:
                    alerts.extend(self._record(sighting.track_id, sighting.label, crossing))
                state.held.clear()
        for track_id in [t for t in self._tracks if t not in live]:
            del self._tracks[track_id]
        return alerts

    def _step(
        self, state: _TrackLines, line: Line, point: tuple[float, float], observation: Observation
    ) -> _Crossing | None:
        distance = line.signed_distance(*point)
        if abs(distance) <= line.hysteresis:
            return None  # on the line: keeps the side it came from
        side = 1 if distance > 0 else -1
        before = state.sides.get(line.name)
        state.sides[line.name] = _Side(side, point, distance, observation)
        if before is None or before.side == side or not line.spans(before.point, point):
            return None
        # Where between the two sightings the path met the line, by distance.
        share = abs(before.distance) / (abs(before.distance) + abs(distance))
        at_s = (observation.monotonic - before.observation.monotonic) * share
        moment = replace(
            observation,
            at=before.observation.at + timedelta(seconds=at_s),
            monotonic=before.observation.monotonic + at_s,
        )
        direction = Direction.IN if side > 0 else Direction.OUT
        return _Crossing(line, direction, moment)

    def _record(self, track_id: int, label: str, crossing: _Crossing) -> list[Alert]:
        line, moment = crossing.line, crossing.at
        key = (line.name, label, crossing.direction)
        self._counts[key] += 1
        event_id = self._new_id()
        started = Event(
            id=event_id,
            camera=self._camera,
            kind=EventKind.LINE_CROSSING,
            label=label,
            track_id=track_id,
            start_time=moment.at,
            end_time=None,
            score=moment.score,
            box=moment.box,
            zone=line.name,
            snapshot=self._snapshot_path(self._camera, event_id),
            evidence={
                "line": line.name,
                "direction": crossing.direction.value,
                "crossed_at": iso_utc(moment.at),
                "count": self._counts[key],
            },
            seq=1,
            seen_at=moment.at,
            seen_score=moment.score,
            zones=(line.name,),
            announced=crossing.direction in line.alert_directions,
            direction=crossing.direction,
        )
        ended = replace(started, end_time=moment.at, end_reason=EndReason.CROSSED, seq=2)
        return [Alert(AlertType.START, started), Alert(AlertType.END, ended)]
