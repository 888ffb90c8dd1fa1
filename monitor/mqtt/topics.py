"""MQTT topic names and alert payloads: pure functions, no I/O.

Topics:
    ``{prefix}/events/{camera}/{kind}``  one message per alert (start, update, end), QoS 1.
    ``{prefix}/available``               retained ``online`` / ``offline`` (the last will).

Alert payload (JSON object, keys in this order)::

    {"type": "start", "id": "3f0c...", "camera": "gate", "kind": "intrusion",
     "label": "person", "track_id": 7, "start_time": "2024-05-01T12:00:00.250Z",
     "end_time": null, "score": 0.873, "box": [10.0, 20.0, 110.0, 220.0],
     "zone": "yard", "snapshot": "/var/lib/monitor/snapshots/3f0c.jpg",
     "seen_at": "2024-05-01T12:00:00.850Z"}

Times are ISO-8601 in UTC with millisecond precision and a trailing ``Z``; ``end_time`` is null
while the event is open. ``seen_at`` is the footage time of the newest sighting the alert is
based on (for ``start``: the frame that confirmed the event, so arrival minus ``seen_at`` is the
daemon's delay; ``start_time`` is the track's first sighting, earlier by the confirmation).
``score`` is rounded to 3 decimals, ``box`` is ``[x1, y1, x2, y2]`` in
pixels of the camera's frame (rounded to 0.1 px).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor.types import Alert, EventKind, OutboxMessage

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


def availability_topic(prefix: str) -> str:
    """The retained ``online``/``offline`` topic (also the MQTT last will)."""
    return f"{prefix}/available"


def iso_utc(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds and a trailing ``Z``.

    Raises:
        ValueError: if ``moment`` is naive (the pipeline only carries UTC-aware datetimes).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} is naive; expected a UTC-aware datetime")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


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
        "score": round(float(event.score), 3),
        "box": event.box.as_list(),
        "zone": event.zone,
        "snapshot": event.snapshot,
        "seen_at": event.evidence.get("last_seen"),
    }
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
