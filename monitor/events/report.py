"""Human and machine renderings of recorded events for ``monitor events``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.types import Event

COLUMNS = (
    "id", "camera", "kind", "label", "track_id", "start_time", "end_time",
    "score", "box", "zone", "snapshot",
)


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def as_dict(event: Event) -> dict[str, Any]:
    """The event as plain JSON-ready values (the same field names as the MQTT payload)."""
    return {
        "id": event.id,
        "camera": event.camera,
        "kind": event.kind.value,
        "label": event.label,
        "track_id": event.track_id,
        "start_time": _time(event.start_time),
        "end_time": _time(event.end_time),
        "score": round(event.score, 3),
        "box": event.box.as_list(),
        "zone": event.zone,
        "snapshot": event.snapshot,
        "evidence": event.evidence,
    }


def render(events: Sequence[Event], fmt: str) -> str:
    """Render a list of events as ``table``, ``json`` (an array) or ``csv`` (with a header)."""
    if fmt == "json":
        return json.dumps([as_dict(e) for e in events], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for event in events:
            row = as_dict(event)
            row["box"] = " ".join(str(v) for v in row["box"])
            writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
        return out.getvalue()
    return _table(events)


def _table(events: Sequence[Event]) -> str:
    if not events:
        return "no events\n"
    header = ("START (UTC)", "DURATION", "CAMERA", "KIND", "LABEL", "TRACK", "SCORE", "ZONE", "ID")
    rows = [header]
    for e in events:
        duration = f"{(e.end_time - e.start_time).total_seconds():.1f}s" if e.end_time else "open"
        rows.append((
            e.start_time.strftime("%Y-%m-%d %H:%M:%S"), duration, e.camera, e.kind.value,
            e.label, str(e.track_id), f"{e.score:.2f}", e.zone or "-", e.id,
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def render_one(event: Event) -> str:
    """One event with its evidence, for ``monitor events show ID``."""
    data = as_dict(event)
    evidence = data.pop("evidence") or {}
    width = max(len(k) for k in data)
    lines = [f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in data.items()]
    lines.append("evidence:")
    for key, value in evidence.items():
        lines.append(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    return "\n".join(lines)
