"""Crowds: at least ``min_objects`` objects of a label in a zone for ``for_s`` seconds.

A crowd is an event about a zone, not about one object (``Event.track_id`` is None). Its members
are the announced objects whose stay in the zone is open (their ``intrusion`` events), so it
follows those: a member that leaves counts until its stay ends (``end_after_s`` outside), and the
crowd ends at the last sighting inside of the member whose departure left too few. The crowd
starts at the moment the zone first held ``min_objects`` (the latest entry among them) and is
published once that has lasted ``for_s`` (each of them seen inside at its end). Updates (count, peak, members) are throttled to one per
``update_interval_s`` like every event's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from monitor.clock import iso_utc
from monitor.config import CrowdConfig, EventsConfig
from monitor.types import Alert, AlertType, Box, EndReason, Event, EventKind, Observation, ZoneStay


@dataclass(slots=True)
class _OpenCrowd:
    event: Event
    since: Observation  # when the zone first held min_objects
    peak: int
    members: dict[int, ZoneStay] = field(default_factory=dict)  # newest stay of each member
    last_alert_monotonic: float = float("-inf")
    alerted_count: int = 0
    last_record_monotonic: float = float("-inf")  # newest state stored (alert or refresh)


class CrowdWatcher:
    """One camera's crowd events.

    Args:
        camera: camera name.
        crowds: zone name -> its crowd settings (zones without one are not watched).
        config: the ``[events]`` section (``update_interval_s``).
        new_id: makes event ids.
        snapshot_path: (camera, event id) -> where its snapshot will be written, or None.
    """

    def __init__(
        self,
        camera: str,
        crowds: dict[str, CrowdConfig],
        config: EventsConfig,
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        snapshot_path: Callable[[str, str], str | None] = lambda camera, event_id: None,
    ) -> None:
        self._camera = camera
        self._crowds = dict(crowds)
        self._config = config
        self._new_id = new_id
        self._snapshot_path = snapshot_path
        self._open: dict[str, _OpenCrowd] = {}
        self._before: dict[str, dict[int, ZoneStay]] = {}  # zone -> members at the last update

    def update(self, stays: Sequence[ZoneStay]) -> list[Alert]:
        """Take the zones' current stays (after the lifecycle took the frame, or expired
        tracks); updates are dated by the members' newest sighting inside."""
        alerts: list[Alert] = []
        for zone, crowd in self._crowds.items():
            members = {
                s.track_id: s for s in stays if s.zone == zone and s.label == crowd.label
            }
            before = self._before.get(zone, {})
            self._before[zone] = members
            open_crowd = self._open.get(zone)
            if open_crowd is None:
                alert = self._maybe_start(zone, crowd, members)
                if alert is not None:
                    alerts.append(alert)
            elif len(members) < crowd.min_objects:
                alerts.append(self._end(zone, crowd, members, before, EndReason.DISPERSED))
            else:
                alert = self._update(open_crowd, members)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def close_all(self, reason: EndReason = EndReason.SHUTDOWN) -> list[Alert]:
        """End every open crowd at its members' newest sighting inside (daemon shutdown)."""
        alerts = []
        for zone in list(self._open):
            open_crowd = self._open.pop(zone)
            last = max((m.last_inside for m in open_crowd.members.values()),
                       key=lambda o: o.monotonic, default=open_crowd.since)
            alerts.append(self._ended(open_crowd, last, reason))
        self._before.clear()
        return alerts

    # --- transitions --------------------------------------------------------------------------

    def _maybe_start(
        self, zone: str, crowd: CrowdConfig, members: dict[int, ZoneStay]
    ) -> Alert | None:
        held = _last_run(members.values(), crowd.min_objects)
        if held is None:
            return None
        since, held_until = held
        if held_until.monotonic - since.monotonic < crowd.for_s:
            return None
        newest = self._newest(members)
        event_id = self._new_id()
        event = Event(
            id=event_id,
            camera=self._camera,
            kind=EventKind.CROWD,
            label=crowd.label,
            track_id=None,
            start_time=since.at,
            end_time=None,
            score=_score(members),
            box=_union(members),
            zone=zone,
            snapshot=self._snapshot_path(self._camera, event_id),
            seq=1,
            seen_at=newest.at,
            seen_score=newest.score,
            zones=(zone,),
        )
        open_crowd = _OpenCrowd(event, since, len(members), dict(members),
                                newest.monotonic, len(members), newest.monotonic)
        open_crowd.event = replace(event, evidence=self._evidence(crowd, open_crowd),
                                   dwell_s=round(newest.monotonic - since.monotonic, 2))
        self._open[zone] = open_crowd
        return Alert(AlertType.START, open_crowd.event)

    def _update(self, open_crowd: _OpenCrowd, members: dict[int, ZoneStay]) -> Alert | None:
        crowd = self._crowds[open_crowd.event.zone or ""]
        open_crowd.members.update(members)
        open_crowd.peak = max(open_crowd.peak, len(members))
        newest = self._newest(members)
        open_crowd.event = replace(
            open_crowd.event,
            score=max(open_crowd.event.score, _score(members)),
            box=_union(members),
            seen_at=newest.at,
            seen_score=newest.score,
            dwell_s=round(newest.monotonic - open_crowd.since.monotonic, 2),
            evidence=self._evidence(crowd, open_crowd, len(members)),
        )
        interval_s = self._config.update_interval_s
        throttled = newest.monotonic - open_crowd.last_alert_monotonic < interval_s
        if throttled or len(members) == open_crowd.alerted_count:
            # Quiet, but its newest state is stored every update_interval_s (as the lifecycle's
            # quiet events), so a restart after a crash ends it at its last sighting.
            if newest.monotonic - open_crowd.last_record_monotonic >= interval_s:
                open_crowd.last_record_monotonic = newest.monotonic
                return Alert(AlertType.UPDATE, open_crowd.event, record_only=True)
            return None
        open_crowd.last_alert_monotonic = open_crowd.last_record_monotonic = newest.monotonic
        open_crowd.alerted_count = len(members)
        open_crowd.event = replace(open_crowd.event, seq=open_crowd.event.seq + 1)
        return Alert(AlertType.UPDATE, open_crowd.event)

    def _end(
        self,
        zone: str,
        crowd: CrowdConfig,
        members: dict[int, ZoneStay],
        before: dict[int, ZoneStay],
        reason: EndReason,
    ) -> Alert:
        open_crowd = self._open.pop(zone)
        departed = sorted((s.last_inside for t, s in before.items() if t not in members),
                          key=lambda o: o.monotonic, reverse=True)
        # With r members left, the zone held min_objects until the (min_objects - r)-th latest
        # departure was last seen inside.
        needed = crowd.min_objects - len(members)
        if departed:
            last = departed[min(needed, len(departed)) - 1]
        else:  # no departure seen (cannot happen while every frame is taken): its newest sighting
            last = self._newest(open_crowd.members)
        return self._ended(open_crowd, last, reason)

    def _ended(self, open_crowd: _OpenCrowd, last: Observation, reason: EndReason) -> Alert:
        crowd = self._crowds[open_crowd.event.zone or ""]
        ended = replace(
            open_crowd.event,
            end_time=max(last.at, open_crowd.event.start_time),
            end_reason=reason,
            seq=open_crowd.event.seq + 1,
            dwell_s=round(max(0.0, last.monotonic - open_crowd.since.monotonic), 2),
            evidence=self._evidence(crowd, open_crowd, 0),
        )
        return Alert(AlertType.END, ended)

    def _evidence(
        self, crowd: CrowdConfig, open_crowd: _OpenCrowd, count: int | None = None
    ) -> dict[str, object]:
        return {
            "since": iso_utc(open_crowd.since.at),
            "count": len(open_crowd.members) if count is None else count,
            "peak": open_crowd.peak,
            "members": sorted(open_crowd.members),
            "min_objects": crowd.min_objects,
            "for_s": crowd.for_s,
        }

    @staticmethod
    def _newest(members: dict[int, ZoneStay]) -> Observation:
        return max((m.last_inside for m in members.values()), key=lambda o: o.monotonic)


def _last_run(
    stays: Iterable[ZoneStay], needed: int
) -> tuple[Observation, Observation] | None:
    """The latest stretch in which at least ``needed`` of the stays overlapped (each from its
    entry to its newest sighting inside): (its start, its end), or None if they never did."""
    changes = sorted(
        [(s.entered, 1) for s in stays] + [(s.last_inside, -1) for s in stays],
        key=lambda change: (change[0].monotonic, -change[1]),  # an entry before a same-time exit
    )
    count, start = 0, None
    run: tuple[Observation, Observation] | None = None
    for moment, step in changes:
        count += step
        if step > 0 and count == needed:
            start = moment
        elif step < 0 and count == needed - 1 and start is not None:
            run, start = (start, moment), None
    return run


def _union(members: dict[int, ZoneStay]) -> Box:
    boxes = [m.last_inside.box for m in members.values()]
    if not boxes:
        return Box(0.0, 0.0, 0.0, 0.0)
    return Box(min(b.x1 for b in boxes), min(b.y1 for b in boxes),
               max(b.x2 for b in boxes), max(b.y2 for b in boxes))


def _score(members: dict[int, ZoneStay]) -> float:
    """The weakest member's score: a crowd is only as sure as its least certain member."""
    return min((m.last_inside.score for m in members.values()), default=0.0)
