"""Event lifecycle of one camera: tracks in, start/update/end alerts out.

An event is one tracked object's life as one kind of event:

* ``presence``: a track of a watched label is confirmed — seen in ``confirm_frames`` frames with
  a median score of at least ``confirm_min_score`` (a false-positive filter like Frigate's);
* ``intrusion``: a confirmed track's foot point is inside a zone;
* ``loitering``: it has stayed in the zone ``loitering_s`` seconds;
* ``fall`` and ``running``: a behaviour decider (``monitor.temporal.deciders``) said so, through
  ``apply_verdicts``; only confirmed tracks get them.

Every ended event's evidence keeps the track's recent observations (``track``), so an operator
can label the event (``monitor label``) and ``monitor train --from-db`` can learn from it.

Events end when their track has been unseen for ``end_after_s`` (zone events also when the track
has been outside the zone that long). Updates are throttled to one per ``update_interval_s``.

Stationary objects (``monitor.events.stationary``): an object that has not moved since it
appeared raises no presence or zone alert; it waits for its first move, and if it stays put for
``stationary_after_s`` it is recorded as a ``stationary`` presence that is never published
(``Event.announced`` False). If it moves later, that record becomes an ordinary event and its start
is published then. An object that stops after moving keeps its events; one update says it is
stationary and the next ones wait until it moves again. A quiet event (stationary, throttled,
unannounced) still has its newest state stored every ``update_interval_s`` by a record-only
alert, so a restart after a crash ends it at its last sighting.

The logic is deterministic: it reads time only from the frames it is given (and the ``now``
passed to ``expire``), so tests drive it frame by frame.
"""

from __future__ import annotations

import statistics
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import iso_utc
from monitor.config import EventsConfig
from monitor.events.evidence import StayEvidence, TrackRecord
from monitor.events.stationary import Movement, MovementSettings
from monitor.events.zones import Zone
from monitor.types import (
    Alert, AlertType, EndReason, Event, EventKind, Evidence, Frame, Observation, Track, Tracks,
    TrackSighting, Verdict, ZoneStay,
)


@dataclass(slots=True)
class _OpenEvent:
    """An open event, its state as last alerted, and whether it is published at all."""

    event: Event
    last_alert_monotonic: float
    alerted: Event
    silent: bool = False  # an object that never moved: recorded, not published
    last_record_monotonic: float = float("-inf")  # newest state stored (alert or refresh)


@dataclass(slots=True)
class _TrackState:
    track_id: int
    label: str
    history: deque[Observation]
    sightings: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    confirmed: bool = False
    zone_entered: dict[str, Observation] = field(default_factory=dict)
    zone_last_inside: dict[str, Observation] = field(default_factory=dict)
    open: dict[tuple[EventKind, str | None], _OpenEvent] = field(default_factory=dict)
    # kind -> why it started, and why it ended once it did
    behaviour_evidence: dict[EventKind, tuple[Evidence, Evidence | None]] = field(
        default_factory=dict
    )
    movement: Movement | None = None
    zones_visited: dict[str, None] = field(default_factory=dict)  # ordered set, entry order

    @property
    def last(self) -> Observation:
        return self.history[-1]


class EventLifecycle:
    """Turns one camera's tracks into event alerts.

    Args:
        camera: camera name.
        labels: watched labels; tracks of other labels are ignored.
        zones: the camera's zones.
        config: the ``[events]`` section.
        new_id: makes event ids (UUID4 text by default; injected for deterministic tests).
        snapshot_path: event -> where its snapshot JPEG will be written (None: no snapshots).
    """

    def __init__(
        self,
        camera: str,
        labels: Sequence[str],
        zones: Sequence[Zone],
        config: EventsConfig,
        *,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        snapshot_path: Callable[[str, str], str | None] = lambda camera, event_id: None,
    ) -> None:
        self._camera = camera
        self._labels = frozenset(labels)
        self._zones = tuple(zones)
        self._config = config
        self._new_id = new_id
        self._snapshot_path = snapshot_path
        self._tracks: dict[int, _TrackState] = {}
        self._frame_size = (0, 0)  # of the newest frame: stored with track records
        self._movement = MovementSettings(
            iou=config.stationary_iou,
            move_frames=config.stationary_move_frames,
            after_s=config.stationary_after_s,
            anchor_len=config.stationary_anchor_frames,
        )

    def history(self, track_id: int) -> tuple[Observation, ...]:
        """The kept observations of a live track, oldest first (empty when unknown)."""
        state = self._tracks.get(track_id)
        return tuple(state.history) if state else ()

    def is_confirmed(self, track_id: int) -> bool:
        state = self._tracks.get(track_id)
        return state is not None and state.confirmed

    def track_ids(self) -> set[int]:
        """The tracks followed now (unseen ones are forgotten after ``end_after_s``)."""
        return set(self._tracks)

    def apply_verdicts(self, verdicts: Sequence[Verdict]) -> list[Alert]:
        """Start or end behaviour events (fall, running) of confirmed tracks."""
        alerts: list[Alert] = []
        for verdict in verdicts:
            state = self._tracks.get(verdict.track_id)
            if state is None or not state.confirmed:
                continue
            kind = EventKind(verdict.kind)
            if verdict.started and (kind, None) not in state.open:
                state.behaviour_evidence[kind] = (verdict.evidence, None)
                alerts.append(self._start(state, kind, None, verdict.at))
            elif not verdict.started and (kind, None) in state.open:
                started = state.behaviour_evidence.get(kind, (verdict.evidence, None))[0]
                state.behaviour_evidence[kind] = (started, verdict.evidence)
                alerts.extend(self._end(state, kind, None, verdict.at, EndReason.BEHAVIOUR_OVER))
        return alerts

    def open_events(self) -> list[Event]:
        return [o.event for s in self._tracks.values() for o in s.open.values()]

    def present(self) -> list[tuple[str, tuple[str, ...]]]:
        """The objects an operator is told about now: for each track with a published presence,
        its label and the zones it is in (zones with a published intrusion event open)."""
        objects = []
        for state in self._tracks.values():
            presence = state.open.get((EventKind.PRESENCE, None))
            if presence is None or presence.silent:
                continue
            zones = tuple(
                zone for kind, zone in state.open
                if kind is EventKind.INTRUSION and zone is not None
                and not state.open[(kind, zone)].silent
            )
            objects.append((state.label, zones))
        return objects

    def zone_stays(self) -> list[ZoneStay]:
        """The announced objects' current stays in zones (one per open, published intrusion)."""
        stays = []
        for state in self._tracks.values():
            for (kind, zone), open_event in state.open.items():
                if kind is not EventKind.INTRUSION or zone is None or open_event.silent:
                    continue
                entered = state.zone_entered.get(zone)
                last_inside = state.zone_last_inside.get(zone)
                if entered is not None and last_inside is not None:
                    stays.append(ZoneStay(state.track_id, state.label, zone, entered, last_inside))
        return stays

    def sightings(self, frame: Frame) -> list[TrackSighting]:
        """The watched tracks seen in ``frame`` (after ``update`` took it)."""
        return [
            TrackSighting(state.track_id, state.label, state.last, state.confirmed,
                          self._announced(state))
            for state in self._tracks.values()
            if state.last.frame_index == frame.index and state.last.monotonic == frame.monotonic
        ]

    def update(self, tracks: Tracks) -> list[Alert]:
        """Feed one frame's tracks; returns the alerts this frame causes, in order."""
        alerts: list[Alert] = []
        self._frame_size = (tracks.frame.width, tracks.frame.height)
        for track in tracks.items:
            if track.detection.label not in self._labels:
                continue
            if tracks.held and not self.is_confirmed(track.track_id):
                # A kept box says "still there", not "seen again": confirmation needs the model.
                continue
            alerts.extend(self._observe(track, tracks.frame))
        alerts.extend(self.expire(tracks.frame.monotonic))
        return alerts

    def expire(self, now_monotonic: float) -> list[Alert]:
        """End the events of tracks unseen for ``end_after_s``; forget those tracks."""
        alerts: list[Alert] = []
        for track_id, state in list(self._tracks.items()):
            if now_monotonic - state.last.monotonic >= self._config.end_after_s:
                alerts.extend(self._end_all(state, EndReason.UNSEEN))
                del self._tracks[track_id]
        return alerts

    def close_all(self) -> list[Alert]:
        """End every open event now (daemon shutdown); end times are each track's last sighting."""
        alerts: list[Alert] = []
        for state in self._tracks.values():
            alerts.extend(self._end_all(state, EndReason.SHUTDOWN))
        self._tracks.clear()
        return alerts

    # --- one sighting -------------------------------------------------------------------------

    def _observe(self, track: Track, frame: Frame) -> list[Alert]:
        detection = track.detection
        state = self._tracks.get(track.track_id)
        if state is None:
            state = _TrackState(
                track.track_id, detection.label, deque(maxlen=self._config.history_len),
                movement=Movement(self._movement, detection.box, frame.monotonic),
            )
            self._tracks[track.track_id] = state
        assert state.movement is not None
        state.movement.update(detection.box, frame.monotonic)
        foot_x, foot_y = detection.box.foot
        inside = frozenset(
            z.name for z in self._zones if z.contains(foot_x, foot_y, frame.width, frame.height)
        )
        observation = Observation(
            frame.captured_at,
            frame.monotonic,
            frame.index,
            detection.box,
            detection.score,
            detection.class_name,
            inside,
        )
        state.history.append(observation)
        state.sightings += 1
        state.classes[detection.class_name] += 1
        for name in sorted(inside):
            state.zones_visited.setdefault(name, None)

        ended_stays = self._track_zones(state, observation)
        alerts: list[Alert] = []
        if not state.confirmed:
            if not self._is_confirmed(state):
                return alerts
            state.confirmed = True
        alerts.extend(self._presence(state))
        if not self._announced(state):
            alerts.extend(self._updates(state, observation))  # silent: keeps the record fresh
            return alerts
        for zone, entered, last_inside in ended_stays:
            for kind in (EventKind.INTRUSION, EventKind.LOITERING):
                alerts.extend(self._end(state, kind, zone, last_inside, EndReason.LEFT_ZONE, entered))
        alerts.extend(self._zone_events(state, observation))
        alerts.extend(self._updates(state, observation))
        return alerts

    def _announced(self, state: _TrackState) -> bool:
        """Whether the object's presence and zone events are published: it has moved since it
        appeared (or the operator wants alerts for objects that never moved)."""
        assert state.movement is not None
        return self._config.alert_never_moved or state.movement.has_moved

    def _presence(self, state: _TrackState) -> list[Alert]:
        """Start (or publish) the presence event of a confirmed track."""
        assert state.movement is not None
        key = (EventKind.PRESENCE, None)
        open_event = state.open.get(key)
        if open_event is None:
            if self._announced(state):
                return [self._start(state, EventKind.PRESENCE, None, state.history[0])]
            if state.movement.stationary:
                # Stayed put since it appeared: keep a record, tell no one.
                return [self._start(state, EventKind.PRESENCE, None, state.history[0], silent=True)]
            return []  # not moved yet: wait for a move, or for it to become stationary
        if open_event.silent and self._announced(state):
            # The stationary object moved: from now on it is an ordinary event. Its stays in
            # zones count from now: a car parked for an hour in the drive has not loitered.
            last = state.last
            state.zone_entered = {name: last for name in last.zones}
            state.zone_last_inside = {name: last for name in last.zones}
            open_event.silent = False
            started = self._refreshed(state, open_event.event)
            started = replace(started, seq=started.seq + 1, announced=True)
            open_event.event = open_event.alerted = started
            open_event.last_alert_monotonic = open_event.last_record_monotonic = last.monotonic
            return [Alert(AlertType.START, started)]
        return []

    def _is_confirmed(self, state: _TrackState) -> bool:
        if state.sightings < self._config.confirm_frames:
            return False
        median = statistics.median(o.score for o in state.history)
        return median >= self._config.confirm_min_score

    def _track_zones(
        self, state: _TrackState, observation: Observation
    ) -> list[tuple[str, Observation, Observation]]:
        """Follow the track's stays in zones, from its first sighting (confirmed or not), so a
        stay's start and dwell do not depend on how long confirmation took. Returns the stays
        that ended: outside the zone for ``end_after_s``."""
        ended: list[tuple[str, Observation, Observation]] = []
        for name in observation.zones:
            state.zone_last_inside[name] = observation
            state.zone_entered.setdefault(name, observation)
        for name, last_inside in list(state.zone_last_inside.items()):
            gone_s = observation.monotonic - last_inside.monotonic
            if name not in observation.zones and gone_s >= self._config.end_after_s:
                ended.append((name, state.zone_entered.pop(name), last_inside))
                del state.zone_last_inside[name]
        return ended

    def _zone_events(self, state: _TrackState, observation: Observation) -> list[Alert]:
        alerts: list[Alert] = []
        for name in sorted(observation.zones):
            entered = state.zone_entered[name]
            if (EventKind.INTRUSION, name) not in state.open:
                alerts.append(self._start(state, EventKind.INTRUSION, name, entered))
            dwell_s = observation.monotonic - entered.monotonic
            if dwell_s >= self._config.loitering_s and (EventKind.LOITERING, name) not in state.open:
                alerts.append(self._start(state, EventKind.LOITERING, name, entered))
        return alerts

    def _refreshed(self, state: _TrackState, event: Event) -> Event:
        """``event`` brought up to the track's newest sighting."""
        assert state.movement is not None
        last = state.last
        return replace(
            event,
            score=max(event.score, last.score),
            box=last.box,
            seen_at=last.at,
            seen_score=last.score,
            stationary=state.movement.stationary,
            zones=self._zones_of(state, event.zone),
            dwell_s=self._dwell_s(state, event.zone),
            evidence=self._evidence(state, event.kind, event.zone),
        )

    def _updates(self, state: _TrackState, observation: Observation) -> list[Alert]:
        alerts: list[Alert] = []
        interval_s = self._config.update_interval_s
        for open_event in state.open.values():
            refreshed = self._refreshed(state, open_event.event)
            open_event.event = refreshed
            now = observation.monotonic
            alerted = open_event.alerted
            throttled = now - open_event.last_alert_monotonic < interval_s
            unchanged = refreshed.box == alerted.box and refreshed.score == alerted.score
            # A stationary object's box jitters: one update says it stopped, then quiet.
            still = refreshed.stationary and alerted.stationary
            quiet = (open_event.silent or throttled or still
                     or (unchanged and refreshed.stationary == alerted.stationary))
            if quiet:
                if now - open_event.last_record_monotonic >= interval_s:
                    open_event.last_record_monotonic = now
                    alerts.append(Alert(AlertType.UPDATE, refreshed, record_only=True))
                continue
            refreshed = replace(refreshed, seq=alerted.seq + 1)
            open_event.event = open_event.alerted = refreshed
            open_event.last_alert_monotonic = open_event.last_record_monotonic = now
            alerts.append(Alert(AlertType.UPDATE, refreshed))
        return alerts

    def _zones_of(self, state: _TrackState, zone: str | None) -> tuple[str, ...]:
        return (zone,) if zone is not None else tuple(state.zones_visited)

    def _dwell_s(self, state: _TrackState, zone: str | None) -> float | None:
        if zone is None:
            return None
        entered = state.zone_entered.get(zone)
        last_inside = state.zone_last_inside.get(zone)
        if entered is None or last_inside is None:
            return None
        return round(last_inside.monotonic - entered.monotonic, 2)

    # --- event transitions --------------------------------------------------------------------

    def _start(
        self,
        state: _TrackState,
        kind: EventKind,
        zone: str | None,
        since: Observation,
        *,
        silent: bool = False,
    ) -> Alert:
        assert state.movement is not None
        last = state.last
        event_id = self._new_id()
        event = Event(
            id=event_id,
            camera=self._camera,
            kind=kind,
            label=state.label,
            track_id=state.track_id,
            start_time=since.at,
            end_time=None,
            score=max(o.score for o in state.history),
            box=last.box,
            zone=zone,
            snapshot=self._snapshot_path(self._camera, event_id),
            evidence=self._evidence(state, kind, zone),
            seq=1,
            seen_at=last.at,
            seen_score=last.score,
            stationary=state.movement.stationary,
            zones=self._zones_of(state, zone),
            dwell_s=self._dwell_s(state, zone),
            announced=not silent,
        )
        state.open[(kind, zone)] = _OpenEvent(event, last.monotonic, event, silent, last.monotonic)
        return Alert(AlertType.START, event)

    def _end(
        self,
        state: _TrackState,
        kind: EventKind,
        zone: str | None,
        last: Observation,
        reason: EndReason,
        entered: Observation | None = None,
    ) -> list[Alert]:
        """End one open event at ``last``; ``entered`` is the start of a zone stay that is over."""
        open_event = state.open.pop((kind, zone), None)
        if open_event is None:
            return []
        evidence = self._evidence(state, kind, zone)
        dwell_s = open_event.event.dwell_s
        if entered is not None:
            dwell_s = round(last.monotonic - entered.monotonic, 2)
            evidence.update(self._stay(kind, entered, dwell_s).to_json())
        evidence["track"] = TrackRecord(self._frame_size, tuple(state.history)).to_json()
        ended = replace(
            open_event.event,
            end_time=last.at,
            evidence=evidence,
            dwell_s=dwell_s,
            end_reason=reason,
            seq=open_event.event.seq + 1,
        )
        return [Alert(AlertType.END, ended)]

    def _end_all(self, state: _TrackState, reason: EndReason) -> list[Alert]:
        alerts: list[Alert] = []
        # Zone events first, presence last: the object's life ends after its stays in zones.
        for kind, zone in sorted(state.open, key=lambda key: key[0] == EventKind.PRESENCE):
            last_inside = state.zone_last_inside.get(zone) if zone else None
            alerts.extend(self._end(state, kind, zone, last_inside or state.last, reason))
        return alerts

    def _evidence(self, state: _TrackState, kind: EventKind, zone: str | None) -> dict[str, Any]:
        scores = [o.score for o in state.history]
        evidence: dict[str, Any] = {
            "first_seen": iso_utc(state.history[0].at),
            "last_seen": iso_utc(state.last.at),
            "sightings": state.sightings,
            "median_score": round(statistics.median(scores), 3),
            "max_score": round(max(scores), 3),
            "classes": dict(state.classes),
            "confirm": {
                "frames": self._config.confirm_frames,
                "min_score": self._config.confirm_min_score,
            },
        }
        if zone is not None:
            dwell_s = self._dwell_s(state, zone)
            if dwell_s is not None:
                evidence.update(self._stay(kind, state.zone_entered[zone], dwell_s).to_json())
        if kind in state.behaviour_evidence:
            started, ended = state.behaviour_evidence[kind]
            evidence["behaviour"] = started.to_json()
            if ended is not None:
                evidence["behaviour"]["ended_by"] = ended.to_json()
        return evidence

    def _stay(self, kind: EventKind, entered: Observation, dwell_s: float) -> StayEvidence:
        loitering_s = self._config.loitering_s if kind is EventKind.LOITERING else None
        return StayEvidence(entered.at, dwell_s, loitering_s)

