"""Human and machine renderings of recorded events for ``monitor events``."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.clock import iso_utc
from monitor.errors import first_line
from monitor.events.evidence import BehaviourEvidence, EvidenceError
from monitor.types import Event, Review

COLUMNS = (
    "id", "camera", "kind", "label", "track_id", "start_time", "end_time", "end_reason",
    "score", "seen_score", "seen_at", "box", "zone", "zones", "dwell_s", "stationary",
    "announced", "direction", "seq", "snapshot", "clip", "operator_label", "evidence",
)


def _time(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment else None


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
        "end_reason": None if event.end_reason is None else event.end_reason.value,
        "score": round(event.score, 3),
        "seen_score": None if event.seen_score is None else round(event.seen_score, 3),
        "seen_at": _time(event.seen_at),
        "box": event.box.as_list(),
        "zone": event.zone,
        "zones": list(event.zones),
        "dwell_s": event.dwell_s,
        "stationary": event.stationary,
        "announced": event.announced,
        "direction": None if event.direction is None else event.direction.value,
        "seq": event.seq,
        "snapshot": event.snapshot,
        "clip": event.clip,
        "operator_label": event.operator_label,
        "evidence": event.evidence,
    }


def render(events: Sequence[Event], fmt: str) -> str:
    """Render a list of events as ``table``, ``json`` (an array) or ``csv`` (with a header)."""
    if fmt == "json":
        return json.dumps([as_dict(e) for e in events], indent=2) + "\n"
    if fmt == "csv":
        return _csv(COLUMNS, [as_dict(e) for e in events])
    return _table(events)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", re.ASCII)


def _csv_cell(value: object) -> str:
    """One CSV cell a spreadsheet never runs as a formula (OWASP's CSV injection advice): text
    starting with = + - @ TAB or CR (or their full-width forms) gets a leading single quote; a
    plain number such as -3 stays a number. A list is space-separated, None empty."""
    text = (" ".join(str(v) for v in value) if isinstance(value, list)
            else json.dumps(value, separators=(",", ":")) if isinstance(value, dict)
            else "" if value is None else str(value))
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv(columns: Sequence[str], rows: Sequence[dict[str, Any]], *, header: bool = True) -> str:
    """A header, then one row per dict, every cell made safe by ``_csv_cell``."""
    out = io.StringIO()
    # csv's own \r\n row end (RFC 4180): then a cell holding a CR is quoted as well as one
    # holding a LF, and reads back whole.
    writer = csv.writer(out)
    if header:
        writer.writerow(columns)
    writer.writerows([_csv_cell(row[c]) for c in columns] for row in rows)
    return out.getvalue()


def _aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells (the first one the header) as text columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


def _note(event: Event) -> str:
    """What an operator must know to read the row right: a stationary object's record was
    never alerted; why the event ended."""
    notes = []
    if event.direction is not None:
        notes.append(f"crossed {event.direction.value}")
        if not event.announced:
            notes.append("counted, not alerted")
    elif not event.announced:
        notes.append("stationary, not alerted")
    elif event.stationary:
        notes.append("stationary")
    if event.end_reason is not None and event.direction is None:
        notes.append(f"ended: {event.end_reason.value}")
    return "; ".join(notes) or "-"


_TABLE_HEADER = ("START (UTC)", "DURATION", "CAMERA", "KIND", "LABEL", "TRACK", "SCORE", "ZONE",
                 "ID", "CLIP", "NOTE")


def _row(e: Event) -> tuple[str, ...]:
    duration = f"{(e.end_time - e.start_time).total_seconds():.1f}s" if e.end_time else "open"
    return (
        e.start_time.strftime("%Y-%m-%d %H:%M:%S"), duration, e.camera, e.kind.value, e.label,
        "-" if e.track_id is None else str(e.track_id), f"{e.score:.2f}", e.zone or "-", e.id,
        e.clip or "-", _note(e),
    )


def _table(events: Sequence[Event]) -> str:
    if not events:
        return "no events\n"
    return _aligned([_TABLE_HEADER, *(_row(e) for e in events)])


def render_followed(events: Sequence[Event], fmt: str, *, first: bool) -> str:
    """Events as ``monitor events --follow`` prints them, a line each as they are recorded:
    JSON Lines for ``json``; CSV with its header only ``first``; table rows two spaces apart
    (columns cannot be aligned with rows yet to come)."""
    if fmt == "json":
        return "".join(json.dumps(as_dict(e)) + "\n" for e in events)
    if fmt == "csv":
        return _csv(COLUMNS, [as_dict(e) for e in events], header=first) if events or first else ""
    rows = [_TABLE_HEADER] if first else []
    return "".join("  ".join(row) + "\n" for row in [*rows, *(_row(e) for e in events)])


def render_one(event: Event) -> str:
    """One event with its evidence, for ``monitor events show ID``.

    A behaviour event (fall, running) first says why: which decider, which model (name and
    SHA-256), the rule values, the frames that triggered it and the per-class probabilities over
    the last model steps. The stored track (kept for training) is summarised, not dumped.
    """
    data = as_dict(event)
    evidence = dict(data.pop("evidence") or {})
    width = max(len(k) for k in data)
    lines = [f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in data.items()]
    behaviour = evidence.pop("behaviour", None)
    if isinstance(behaviour, dict):
        try:
            lines.extend(_why(BehaviourEvidence.from_json(behaviour)))
        except (EvidenceError, TypeError, ValueError) as exc:  # an older version's layout
            lines.append(f"why: unreadable ({first_line(exc)}): {json.dumps(behaviour)[:200]}")
    track = evidence.pop("track", None)
    lines.append("evidence:")
    for key, value in evidence.items():
        lines.append(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    if isinstance(track, dict):
        lines.append(f"  track: {len(track.get('t', []))} observations kept (for 'monitor train "
                     "--from-db' once labelled)")
    return "\n".join(lines)


def _why(behaviour: BehaviourEvidence) -> list[str]:
    lines = ["why:", f"  decider: {behaviour.decider}"]
    scorer = behaviour.scorer
    if "sha256" in scorer:
        lines.append(
            f"  model: {scorer.get('name')} sha256 {scorer.get('sha256')} "
            f"({scorer.get('architecture')}, window {scorer.get('window')} x {scorer.get('step_s')} s)"
        )
    elif scorer:
        lines.append(f"  thresholds: {json.dumps(dict(scorer))}")
    if behaviour.rules:
        lines.append("  rule values: " + ", ".join(f"{k} {v}" for k, v in behaviour.rules.items()))
    trigger = behaviour.trigger
    frames = trigger.frames
    lines.append(
        f"  trigger: {iso_utc(trigger.start)} .. {iso_utc(trigger.end)}, probability "
        f"{trigger.probability}, frames {frames[0] if frames else '-'}"
        f"..{frames[-1] if frames else '-'} ({len(frames)})"
    )
    if behaviour.probabilities:
        labels = list(behaviour.probabilities[-1][1])
        lines.append("  probabilities over the last steps:")
        lines.append("    " + "time".ljust(15) + "".join(f"{label:>10}" for label in labels))
        for at, step in behaviour.probabilities:
            moment = at.strftime("%H:%M:%S.%f")[:-3]
            cells = "".join(f"{step.get(label, 0.0):>10.3f}" for label in labels)
            lines.append(f"    {moment.ljust(15)}{cells}")
    ended = behaviour.ended_by
    if ended is not None:
        lines.append(f"  ended: {iso_utc(ended.trigger.start)} (probability "
                     f"{ended.trigger.probability})")
    return lines


REVIEW_COLUMNS = (
    "id", "camera", "severity", "start_time", "end_time", "events", "kinds", "labels", "zones",
    "seq",
)


def review_dict(review: Review) -> dict[str, Any]:
    """A review as plain JSON-ready values (the field names of its MQTT message)."""
    return {
        "id": review.id,
        "camera": review.camera,
        "severity": review.severity.value,
        "start_time": _time(review.start_time),
        "end_time": _time(review.end_time),
        "events": list(review.event_ids),
        "kinds": list(review.kinds),
        "labels": list(review.labels),
        "zones": list(review.zones),
        "seq": review.seq,
    }


def render_reviews(reviews: Sequence[Review], fmt: str) -> str:
    """Render review items as ``table``, ``json`` (an array) or ``csv`` (with a header)."""
    if fmt == "json":
        return json.dumps([review_dict(r) for r in reviews], indent=2) + "\n"
    if fmt == "csv":
        return _csv(REVIEW_COLUMNS, [review_dict(r) for r in reviews])
    if not reviews:
        return "no reviews\n"
    header = ("START (UTC)", "DURATION", "CAMERA", "SEVERITY", "EVENTS", "KINDS", "ZONES", "ID")
    rows = [header]
    for r in reviews:
        duration = f"{(r.end_time - r.start_time).total_seconds():.1f}s" if r.end_time else "open"
        rows.append((
            r.start_time.strftime("%Y-%m-%d %H:%M:%S"), duration, r.camera, r.severity.value,
            str(len(r.event_ids)), ",".join(r.kinds), ",".join(r.zones) or "-", r.id,
        ))
    return _aligned(rows)
