"""The read side of the store, plus outbox retention.

Every function opens its own short session, so any thread may call them while the writer thread
writes. Rows come back as the frozen boundary types of ``monitor.types``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.errors import first_line
from monitor.store.db import StoreError, masked_url
from monitor.store.models import CrossingTotalRow, EventRow, OutboxRow, ReviewRow, require_utc
from monitor.types import (
    LOCAL_INSTANCE,
    Box, Direction, EndReason, Event, EventKind, OutboxMessage, Review, Severity,
)

# LIMIT is a signed 64-bit integer in SQLite and PostgreSQL (BIGINT).
MAX_LIMIT = 2**63 - 1


@contextmanager
def _reading(engine: Engine, what: str) -> Iterator[Session]:
    """A session for one read; a database error becomes one line naming the database."""
    try:
        with Session(engine) as session:
            yield session
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read {what} from {masked_url(engine)}: {first_line(exc)}"
        ) from None


def pending_messages(
    engine: Engine, *, after_id: int, limit: int, instance: str = LOCAL_INSTANCE
) -> list[OutboxMessage]:
    """This instance's unsent outbox messages with ``id > after_id``, in id (= publish) order.

    Only the rows of one daemon instance: its single writer thread commits them in id order, so
    "after the last id published" never skips one (another daemon's rows interleave in id but
    commit in their own time).

    Args:
        engine: from ``open_database``.
        after_id: the highest id the caller already holds; 0 for all.
        limit: at most this many messages (>= 1).
        instance: the daemon whose rows these are (``[daemon] instance``).

    Returns:
        Messages with their ``id`` set.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    query = (
        select(OutboxRow.id, OutboxRow.camera, OutboxRow.topic, OutboxRow.payload)
        .where(OutboxRow.sent_at.is_(None), OutboxRow.instance == instance,
               OutboxRow.id > after_id)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    with Session(engine) as session:
        return [
            OutboxMessage(id=row.id, camera=row.camera, topic=row.topic, payload=row.payload)
            for row in session.execute(query)
        ]


def count_unsent(engine: Engine, instance: str | None = None) -> int:
    """Number of outbox messages not yet acknowledged by the broker (of one instance, or all)."""
    query = select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
    if instance is not None:
        query = query.where(OutboxRow.instance == instance)
    with Session(engine) as session:
        return int(session.scalar(query) or 0)


def claim_unowned_messages(engine: Engine, instance: str) -> int:
    """Give the unsent rows written before instances existed (``instance`` NULL) to ``instance``.

    Run once at start-up, before the writer thread starts; with several daemons the first one
    to start takes them all, in one statement, so none is published twice.

    Returns:
        How many rows were claimed.
    """
    query = (
        update(OutboxRow)
        .where(OutboxRow.instance.is_(None), OutboxRow.sent_at.is_(None))
        .values(instance=instance)
    )
    with Session(engine) as session, session.begin():
        return int(session.execute(query).rowcount or 0)  # type: ignore[attr-defined]


def list_events(
    engine: Engine,
    *,
    camera: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[Event]:
    """Events, newest ``start_time`` first.

    Args:
        engine: from ``open_database``.
        camera: only this camera's events.
        kind: only this kind (an ``EventKind`` value such as ``"intrusion"``).
        since: only events that started at or after this aware datetime.
        until: only events that started before this aware datetime.
        limit: at most this many events, 1 to ``MAX_LIMIT``.

    Returns:
        The matching events.

    Raises:
        StoreError: the database cannot be read (one line, URL masked).
        ValueError: ``limit`` is out of range, or ``since``/``until`` is naive.
    """
    query = _newest_first(select(EventRow), EventRow, camera, since, until, limit)
    if kind is not None:
        query = query.where(EventRow.kind == EventKind(kind).value)
    with _reading(engine, "events") as session:
        return [_to_event(row) for row in session.scalars(query)]


_Query = TypeVar("_Query", bound=Select[Any])
_Open = TypeVar("_Open", EventRow, ReviewRow)


def events_recorded_since(
    engine: Engine,
    recorded_since: datetime,
    *,
    camera: str | None = None,
    kind: str | None = None,
    limit: int = 1000,
) -> list[tuple[datetime, Event]]:
    """Events by when they were first recorded (``created_at``), oldest first, from
    ``recorded_since`` on: what ``monitor events --follow`` polls. An event is recorded when it
    is confirmed, which can be long after its ``start_time`` (a ``camera_offline`` event starts
    when the camera went away), so following by ``start_time`` would miss some.

    Returns:
        (recorded at, event) pairs.

    Raises:
        StoreError: the database cannot be read.
        ValueError: ``limit`` is out of range, or ``recorded_since`` is naive.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    query = select(EventRow).where(EventRow.created_at >= require_utc(recorded_since, "since"))
    if camera is not None:
        query = query.where(EventRow.camera == camera)
    if kind is not None:
        query = query.where(EventRow.kind == EventKind(kind).value)
    query = query.order_by(EventRow.created_at, EventRow.id).limit(limit)
    with _reading(engine, "events") as session:
        return [(row.created_at, _to_event(row)) for row in session.scalars(query)]


def _newest_first(
    query: _Query, table: type[EventRow] | type[ReviewRow], camera: str | None,
    since: datetime | None, until: datetime | None, limit: int,
) -> _Query:
    """The filters and order ``list_events`` and ``list_reviews`` share."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    if camera is not None:
        query = query.where(table.camera == camera)
    if since is not None:
        query = query.where(table.start_time >= require_utc(since, "since"))
    if until is not None:
        query = query.where(table.start_time < require_utc(until, "until"))
    # id breaks ties so pages are stable when rows share a start time.
    return query.order_by(table.start_time.desc(), table.id.desc()).limit(limit)


def get_event(engine: Engine, event_id: str) -> Event | None:
    """The event with this id, or None.

    Raises:
        StoreError: the database cannot be read (one line, URL masked).
    """
    with _reading(engine, f"event {event_id}") as session:
        row = session.get(EventRow, event_id)
        return None if row is None else _to_event(row)


def set_operator_label(engine: Engine, event_id: str, label: str) -> Event | None:
    """Record what an operator says the event really was; None when there is no such event."""
    with Session(engine) as session, session.begin():
        row = session.get(EventRow, event_id)
        if row is None:
            return None
        row.operator_label = label
        row.labelled_at = datetime.now(UTC)
        session.flush()
        return _to_event(row)


def labelled_events(engine: Engine) -> list[Event]:
    """Every ended event an operator labelled, oldest first."""
    query = (
        select(EventRow)
        .where(EventRow.operator_label.is_not(None), EventRow.end_time.is_not(None))
        .order_by(EventRow.start_time, EventRow.id)
    )
    with Session(engine) as session:
        return [_to_event(row) for row in session.scalars(query)]


def open_events(engine: Engine, cameras: Sequence[str]) -> list[Event]:
    """Events of these cameras that have no end (after a crash: left open), oldest first.

    Raises:
        StoreError: the database cannot be read (one line, URL masked).
    """
    return [_to_event(row) for row in _left_open(engine, EventRow, cameras)]


def crossing_counts(engine: Engine, camera: str) -> dict[tuple[str, str, Direction], int]:
    """How often each of the camera's lines was crossed, per label and direction, over every
    recorded ``line_crossing`` event, including those retention has deleted since: what the
    retained counters continue from at start-up.

    Raises:
        StoreError: the database cannot be read (one line, URL masked).
    """
    statement = (
        select(EventRow.zone, EventRow.label, EventRow.direction, func.count())
        .where(EventRow.camera == camera, EventRow.kind == EventKind.LINE_CROSSING.value,
               EventRow.zone.is_not(None), EventRow.direction.is_not(None))
        .group_by(EventRow.zone, EventRow.label, EventRow.direction)
    )
    deleted = select(CrossingTotalRow.line, CrossingTotalRow.label, CrossingTotalRow.direction,
                     CrossingTotalRow.count).where(CrossingTotalRow.camera == camera)
    try:
        with Session(engine) as session:
            rows = [*session.execute(statement).all(), *session.execute(deleted).all()]
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot count line crossings in {masked_url(engine)}: {first_line(exc)}"
        ) from None
    counts: dict[tuple[str, str, Direction], int] = {}
    for line, label, direction, count in rows:  # stored events, then what retention deleted
        key = (str(line), str(label), Direction(direction))
        counts[key] = counts.get(key, 0) + int(count)
    return counts


def _left_open(
    engine: Engine, table: type[_Open], cameras: Sequence[str]
) -> list[_Open]:
    """Rows of ``table`` of these cameras without an end time, oldest first (start-up)."""
    statement = (
        select(table)
        .where(table.end_time.is_(None), table.camera.in_(list(cameras)))
        .order_by(table.start_time, table.id)
    )
    try:
        with Session(engine) as session:
            return list(session.scalars(statement))
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read open {table.__tablename__} from {masked_url(engine)}: {first_line(exc)}"
        ) from None


def delete_sent_before(engine: Engine, cutoff: datetime) -> int:
    """Delete outbox messages sent before ``cutoff`` (an aware datetime); unsent ones stay.

    Returns:
        The number of rows deleted.
    """
    statement = delete(OutboxRow).where(
        OutboxRow.sent_at.is_not(None), OutboxRow.sent_at < require_utc(cutoff, "cutoff")
    )
    with Session(engine) as session, session.begin():
        result = session.execute(statement, execution_options={"synchronize_session": False})
        return int(getattr(result, "rowcount", 0))


def _to_event(row: EventRow) -> Event:
    x1, y1, x2, y2 = (float(v) for v in row.box)
    return Event(
        id=row.id,
        camera=row.camera,
        kind=EventKind(row.kind),
        label=row.label,
        track_id=row.track_id,
        start_time=row.start_time,
        end_time=row.end_time,
        score=row.score,
        box=Box(x1, y1, x2, y2),
        zone=row.zone,
        snapshot=row.snapshot,
        evidence=dict(row.evidence or {}),
        operator_label=row.operator_label,
        seq=row.seq,
        seen_at=row.seen_at,
        seen_score=row.seen_score,
        stationary=row.stationary,
        zones=tuple(row.zones or ()),
        dwell_s=row.dwell_s,
        end_reason=None if row.end_reason is None else EndReason(row.end_reason),
        announced=row.announced,
        direction=None if row.direction is None else Direction(row.direction),
        clip=row.clip,
    )


def list_reviews(
    engine: Engine,
    *,
    camera: str | None = None,
    severity: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[Review]:
    """Review items, newest ``start_time`` first (filters and errors as ``list_events``)."""
    query = _newest_first(select(ReviewRow), ReviewRow, camera, since, until, limit)
    if severity is not None:
        query = query.where(ReviewRow.severity == Severity(severity).value)
    with _reading(engine, "reviews") as session:
        return [_to_review(row) for row in session.scalars(query)]


def get_review(engine: Engine, review_id: str) -> Review | None:
    """The review with this id, or None (errors as ``get_event``)."""
    with _reading(engine, f"review {review_id}") as session:
        row = session.get(ReviewRow, review_id)
        return _to_review(row) if row is not None else None


def open_reviews(engine: Engine, cameras: Sequence[str]) -> list[Review]:
    """Reviews of these cameras without an end (left open by a crash), oldest first.

    Raises:
        StoreError: the database cannot be read.
    """
    return [_to_review(row) for row in _left_open(engine, ReviewRow, cameras)]


def _to_review(row: ReviewRow) -> Review:
    return Review(
        id=row.id,
        camera=row.camera,
        start_time=row.start_time,
        end_time=row.end_time,
        severity=Severity(row.severity),
        event_ids=tuple(row.event_ids),
        kinds=tuple(row.kinds),
        labels=tuple(row.labels),
        zones=tuple(row.zones),
        seq=row.seq,
    )
