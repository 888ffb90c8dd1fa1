"""How many objects are in front of a camera now, per label and per zone, and whether it moves.

Events overlap (eight people, eight presence events), so "ON at a start, OFF at an end" is
wrong for any subscriber; a count is not. ``Occupancy`` turns a camera's live events into a
``CameraState`` after every frame and hands it on only when it changed: the retained MQTT state
(``monitor.mqtt.state``) that a Home Assistant sensor reads.

A camera's object counts equal its announced presence events open now; a zone's equal its
announced intrusion events open now (so they follow the events' ``end_after_s`` grace). Motion
is ON from the first frame that moved until ``off_delay_s`` without motion.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from monitor.types import CameraState, Direction, Motion


class StateSink(Protocol):
    def publish_state(self, state: CameraState) -> None: ...


def empty_state(
    camera: str, labels: Sequence[str], zones: Sequence[str], *, motion_known: bool = True
) -> CameraState:
    """Nothing present, no motion: what a camera's retained state is at start and at stop."""
    counts: dict[tuple[str | None, str], int] = {(None, label): 0 for label in labels}
    counts.update({(zone, label): 0 for zone in zones for label in labels})
    return CameraState(camera, counts, False if motion_known else None)


class Occupancy:
    """One camera's current counts and motion state.

    Args:
        camera: camera name.
        labels: the camera's watched labels (each gets a count, 0 included).
        zones: the camera's zone names.
        motion_off_delay_s: seconds without motion before motion turns OFF.
        sink: receives every changed state (and the first one).
        motion_known: False when motion detection is off: motion stays None (unknown).
        crossings: the lines' crossing counts so far (published with the first state).
    """

    def __init__(
        self,
        camera: str,
        labels: Sequence[str],
        zones: Sequence[str],
        motion_off_delay_s: float,
        sink: StateSink,
        *,
        motion_known: bool = True,
        crossings: Mapping[tuple[str, str, Direction], int] | None = None,
    ) -> None:
        self._camera = camera
        self._empty = empty_state(camera, labels, zones, motion_known=motion_known)
        self._off_delay_s = motion_off_delay_s
        self._sink = sink
        self._motion_known = motion_known
        self._last_motion: float | None = None
        self._state: CameraState | None = None
        self._crossings = dict(crossings or {})

    def reset(self) -> CameraState:
        """Nothing present, no motion: at start (over a crashed run's retained values) and stop.
        Line crossing counts are totals: they stay."""
        self._last_motion = None
        return self._publish(dict(self._empty.counts), self._empty.motion)

    def update(
        self,
        present: Sequence[tuple[str, Sequence[str]]],
        now_monotonic: float,
        motion: Motion | None = None,
        crossings: Mapping[tuple[str, str, Direction], int] | None = None,
    ) -> CameraState:
        """Take the objects present now (label, zones it is in), what moved in this frame and
        the lines' crossing counts (None: unchanged)."""
        if crossings is not None:
            self._crossings = dict(crossings)
        if motion is not None and motion.regions:
            self._last_motion = now_monotonic
        counts: Counter[tuple[str | None, str]] = Counter(self._empty.counts)
        for label, zones in present:
            counts[(None, label)] += 1
            for zone in zones:
                counts[(zone, label)] += 1
        moving: bool | None = None
        if self._motion_known:
            moving = (
                self._last_motion is not None
                and now_monotonic - self._last_motion < self._off_delay_s
            )
        return self._publish(dict(counts), moving)

    def _publish(self, counts: dict[tuple[str | None, str], int], motion: bool | None) -> CameraState:
        state = CameraState(self._camera, counts, motion, dict(self._crossings))
        if state != self._state:
            self._state = state
            self._sink.publish_state(state)
        return state
