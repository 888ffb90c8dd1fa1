"""MQTT topic names and alert payloads: pure functions, no I/O.

Topics:
    ``{prefix}/events/{camera}/{kind}``    one message per alert (start, update, end), QoS 1.
    ``{prefix}/reviews``                   review items (new, update, end), QoS 1.
    ``{prefix}/clips/{camera}``            one message per event clip written, QoS 1.
    ``{prefix}/available/{instance}``      retained ``online`` / ``offline`` (the last will), one
                                           per daemon instance sharing the broker.
    ``{prefix}/{camera}/{label}``          retained count of objects present (e.g. ``2``).
    ``{prefix}/{camera}/{zone}/{label}``   retained count of objects present in a zone.
    ``{prefix}/{camera}/motion``           retained ``ON`` / ``OFF``.
    ``{prefix}/{camera}/status``           retained ``online`` / ``offline`` (frames arriving).

Alert payload (JSON object, keys in this order)::

    {"type": "update", "id": "3f0c...", "camera": "gate", "kind": "intrusion",
     "label": "person", "track_id": 7, "start_time": "2024-05-01T12:00:00.250Z",
     "end_time": null, "score": 0.812, "top_score": 0.873, "box": [10.0, 20.0, 110.0, 220.0],
     "zone": "yard", "zones": ["yard"], "dwell_s": 4.6, "stationary": false, "end_reason": null,
     "snapshot": "/var/lib/monitor/snapshots/gate/3f0c.jpg",
     "seen_at": "2024-05-01T12:00:04.850Z", "seq": 3}

Times are ISO-8601 in UTC with millisecond precision and a trailing ``Z``; ``end_time`` is null
while the event is open. ``seen_at`` is the footage time of the newest sighting the alert is
based on (for ``start``: the frame that confirmed the event, so arrival minus ``seen_at`` is the
daemon's delay; ``start_time`` is the track's first sighting, earlier by the confirmation).
``score`` is that sighting's detector score and ``top_score`` the best so far, both rounded to 3
decimals; ``box`` is ``[x1, y1, x2, y2]`` in pixels of the camera's frame (rounded to 0.1 px).
``zones`` are the zones the object has been in (a zone event: its own zone), ``dwell_s`` the
seconds from entering the zone to the last sighting in it (null for other kinds). ``seq`` numbers
the event's alerts in order (1 = start; a stationary record promoted to an event starts at 2):
``(id, type, seq)`` is unique, so it is the de-duplication key.
``end_reason`` (on ``end``): ``unseen``, ``left_zone``, ``behaviour_over``, ``shutdown`` or
``restart`` (found open at start-up after the daemon died).
"""

from __future__ import annotations

import json
from datetime import datetime

from monitor.clock import iso_utc
from monitor.types import (
    Alert, CameraState, Direction, Event, EventKind, OutboxMessage, ReviewMessage,
)

_FORBIDDEN_IN_LEVEL = ("/", "#", "+")


def _level(name: str, what: str) -> str:
    """Check that ``name`` is one non-empty topic level without wildcards."""
    if not name or any(c in name for c in _FORBIDDEN_IN_LEVEL):
        raise ValueError(f"{what} {name!r} must be non-empty and contain no '/', '#' or '+'")
    return name


def event_topic(prefix: str, camera: str, kind: EventKind | str) -> str:
    """The topic alerts of one camera and event kind are published on.

    Args:
        prefix: topic prefix from ``[mqtt] prefix`` (may itself contain '/').
        camera: camera name (one topic level).
        kind: event kind, e.g. ``EventKind.INTRUSION`` or ``"intrusion"``.

    Returns:
        ``f"{prefix}/events/{camera}/{kind}"``, e.g. ``monitor/events/gate/intrusion``.
    """
    kind_name = kind.value if isinstance(kind, EventKind) else kind
    return f"{prefix}/events/{_level(camera, 'camera')}/{_level(kind_name, 'kind')}"


def count_topic(prefix: str, camera: str, label: str, zone: str | None = None) -> str:
    """Retained count of the objects of ``label`` present now, in the camera or one of its zones.

    Returns:
        ``{prefix}/{camera}/{label}`` or ``{prefix}/{camera}/{zone}/{label}``.
    """
    levels = [_level(camera, "camera")]
    if zone is not None:
        levels.append(_level(zone, "zone"))
    levels.append(_level(label, "label"))
    return "/".join([prefix, *levels])


def motion_topic(prefix: str, camera: str) -> str:
    """Retained ``ON``/``OFF``: something moved in front of the camera within the off delay."""
    return f"{prefix}/{_level(camera, 'camera')}/motion"


def status_topic(prefix: str, camera: str) -> str:
    """Retained ``online`` while the camera's frames arrive, ``offline`` otherwise (and after a
    clean stop): ``{prefix}/{camera}/status``."""
    return f"{prefix}/{_level(camera, 'camera')}/status"


def state_messages(prefix: str, state: CameraState) -> list[tuple[str, str]]:
    """The retained ``(topic, payload)`` pairs one camera state is published as."""
    messages = [
        (count_topic(prefix, state.camera, label, zone), str(count))
        for (zone, label), count in state.counts.items()
    ]
    if state.motion is not None:
        messages.append((motion_topic(prefix, state.camera), "ON" if state.motion else "OFF"))
    messages.extend(
        (crossings_topic(prefix, state.camera, line, label, direction), str(count))
        for (line, label, direction), count in state.crossings.items()
    )
    return messages


def crossings_topic(prefix: str, camera: str, line: str, label: str, direction: Direction) -> str:
    """Retained count of a line's crossings by objects of ``label`` in ``direction``, since the
    records began (continued across restarts from the store): ``{prefix}/{camera}/crossings/
    {line}/{label}/{in|out}``, an integer that only grows (Home Assistant ``total_increasing``)."""
    return f"{prefix}/{camera}/crossings/{line}/{label}/{direction.value}"


def reviews_topic(prefix: str) -> str:
    """Review items of every camera: ``new``, ``update`` and ``end`` messages, QoS 1."""
    return f"{prefix}/reviews"


def review_payload(message: ReviewMessage) -> str:
    """The JSON text of one review message::

        {"type": "new", "id": "9a1e...", "camera": "gate", "severity": "alert",
         "start_time": "2024-05-01T12:00:00.250Z", "end_time": null,
         "events": ["3f0c...", "77b2..."], "kinds": ["presence", "intrusion"],
         "labels": ["person"], "zones": ["yard"], "seq": 1}

    ``(id, type, seq)`` is unique, as for alerts.
    """
    review = message.review
    body = {
        "type": message.type.value,
        "id": review.id,
        "camera": review.camera,
        "severity": review.severity.value,
        "start_time": iso_utc(review.start_time),
        "end_time": None if review.end_time is None else iso_utc(review.end_time),
        "events": list(review.event_ids),
        "kinds": list(review.kinds),
        "labels": list(review.labels),
        "zones": list(review.zones),
        "seq": review.seq,
    }
    return json.dumps(body, separators=(",", ":"))


def review_outbox_message(prefix: str, message: ReviewMessage) -> OutboxMessage:
    """The outbox row of one review message (in order with the camera's event alerts)."""
    return OutboxMessage(
        id=None, camera=message.review.camera, topic=reviews_topic(prefix),
        payload=review_payload(message),
    )


def clip_topic(prefix: str, camera: str) -> str:
    """Clips of one camera's events, once written (after the event's ``end``): ``{prefix}/clips/
    {camera}``. A topic of its own, not a fourth alert type: Home Assistant's event entities
    on the alert topics list their event types, and a clip is not a change of the event."""
    return f"{prefix}/clips/{_level(camera, 'camera')}"


def clip_payload(event: Event, path: str, starts_at: datetime, duration_s: float,
                 size_bytes: int) -> str:
    """The JSON text of one clip message::

        {"type": "clip", "id": "3f0c...", "camera": "gate", "kind": "intrusion",
         "start_time": "2024-05-01T12:00:00.250Z", "end_time": "2024-05-01T12:00:09.100Z",
         "clip": "/var/lib/monitor/clips/gate/2024-05-01/3f0c....mp4",
         "clip_start": "2024-05-01T12:59:55.300Z", "duration_s": 19.0, "size_bytes": 412345}

    ``id`` is the event's (as in its alerts); ``end_time`` is null for an event still open when
    its clip reached ``max_length_s``. ``clip_start`` is the footage time of the first frame,
    ``duration_s`` the playing time.
    """
    body = {
        "type": "clip",
        "id": event.id,
        "camera": event.camera,
        "kind": event.kind.value,
        "start_time": iso_utc(event.start_time),
        "end_time": None if event.end_time is None else iso_utc(event.end_time),
        "clip": path,
        "clip_start": iso_utc(starts_at),
        "duration_s": round(duration_s, 3),
        "size_bytes": size_bytes,
    }
    return json.dumps(body, separators=(",", ":"))


def availability_topic(prefix: str, instance: str) -> str:
    """The retained online/offline topic of one daemon instance (``[daemon] instance``): with
    several daemons on one broker, one daemon's death must not mark the others offline."""
    return f"{prefix}/available/{_level(instance, 'instance')}"


def alert_payload(alert: Alert) -> str:
    """The JSON text of one alert (schema in the module docstring)."""
    event = alert.event
    body = {
        "type": alert.type.value,
        "id": event.id,
        "camera": event.camera,
        "kind": event.kind.value,
        "label": event.label,
        "track_id": event.track_id,
        "start_time": iso_utc(event.start_time),
        "end_time": None if event.end_time is None else iso_utc(event.end_time),
        "score": round(float(event.score if event.seen_score is None else event.seen_score), 3),
        "top_score": round(float(event.score), 3),
        "box": event.box.as_list(),
        "zone": event.zone,
        "zones": list(event.zones),
        "dwell_s": event.dwell_s,
        "stationary": event.stationary,
        "end_reason": None if event.end_reason is None else event.end_reason.value,
        "snapshot": event.snapshot,
        "seen_at": None if event.seen_at is None else iso_utc(event.seen_at),
        "seq": event.seq,
    }
    if event.direction is not None:
        body["direction"] = event.direction.value
    return json.dumps(body, separators=(",", ":"))


def outbox_message(prefix: str, alert: Alert) -> OutboxMessage:
    """The outbox row for one alert (``id`` is None until the store assigns one).

    Example:
        >>> msg = outbox_message("monitor", alert)  # doctest: +SKIP
        >>> msg.topic
        'monitor/events/gate/intrusion'
    """
    event = alert.event
    return OutboxMessage(
        id=None,
        camera=event.camera,
        topic=event_topic(prefix, event.camera, event.kind),
        payload=alert_payload(alert),
    )
