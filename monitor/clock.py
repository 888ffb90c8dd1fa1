"""The one text form of a moment: ISO-8601 UTC with milliseconds and a trailing ``Z``.

Used by MQTT payloads, event evidence and the CLI's JSON and CSV, so a subscriber, a script and
the database all show ``2026-11-25T14:03:11.200Z`` for the same instant.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with milliseconds and a trailing ``Z``.

    Raises:
        ValueError: if ``moment`` is naive (the pipeline only carries UTC-aware datetimes).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} is naive; expected a UTC-aware datetime")
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"
