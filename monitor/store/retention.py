"""Retention's database side: bounded steps that delete old rows, run on the writer thread.

Each step is one short transaction over at most ``limit`` rows, so a backlog of months is many
small transactions between alerts rather than one that holds SQLite's write lock for minutes.
``EventWriter.apply_retention`` queues a step; ``apply_step`` runs it. A step that gives paths
back has already committed: no stored event points to them any more, so the files may go.
``monitor.store.cleaner`` decides which steps to run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Engine, and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import Exists

from monitor.store.db import in_chunks
from monitor.store.models import CrossingTotalRow, EventRow, OutboxRow, ReviewRow, require_utc
from monitor.types import EventKind

@dataclass(frozen=True, slots=True)
class ExpireEvents:
    """Delete ended events that ended before ``cutoff``, with their outbox rows.

    An event with an outbox row not yet sent is kept (its alert is still to be delivered), and
    so is one an operator labelled when ``keep_labelled`` (training data).
    """

    cutoff: datetime
    limit: int
    keep_labelled: bool = True


@dataclass(frozen=True, slots=True)
class ExpireReviews:
    """Delete reviews that ended before ``cutoff`` and none of whose events is stored any more.

    ``after`` is the (end_time, id) of the last review an earlier step looked at: reviews kept
    because an event of theirs is kept are not looked at again in the same run.
    """

    cutoff: datetime
    limit: int
    after: tuple[datetime, str] | None = None


@dataclass(frozen=True, slots=True)
class ExpireSnapshots:
    """Null the snapshot of ended events that ended before ``cutoff`` and whose snapshot path
    starts with ``prefix`` (this daemon's snapshot folder).

    An event with an undelivered alert keeps its snapshot: the alert names the file.
    """

    cutoff: datetime
    prefix: str
    limit: int


@dataclass(frozen=True, slots=True)
class ForgetSnapshots:
    """Null the snapshot of ended events whose snapshot is one of ``paths`` (the byte cap).

    Paths an open event points to are kept (its next update would store the path again), and
    so are those of an event with an undelivered alert (the alert names the file).
    """

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnreferencedSnapshots:
    """Change nothing; give back which of ``paths`` no stored event points to.

    Run on the writer thread all the same: an alert queued before it is committed before it, so
    a snapshot whose event is still waiting in the queue is not taken for a stray file.
    """

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UnreferencedClips:
    """Change nothing; give back which of ``paths`` no stored event's clip is (on the writer
    thread, as ``UnreferencedSnapshots``: a clip whose path is queued is not taken for a stray)."""

    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IncrementalVacuum:
    """SQLite: give up to ``pages`` free pages back to the file system (a no-op elsewhere)."""

    pages: int


RetentionStep = (
    ExpireEvents | ExpireReviews | ExpireSnapshots | ForgetSnapshots | UnreferencedSnapshots
    | UnreferencedClips | IncrementalVacuum
)


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step did.

    Attributes:
        rows: events, reviews or snapshot references deleted; for a vacuum, pages freed.
        outbox_rows: outbox rows deleted with the events.
        paths: snapshot files no stored event points to any more (safe to delete).
        clip_paths: the same for clip files.
        more: the step hit its limit; run it again (with ``after`` for reviews).
        after: where the next ``ExpireReviews`` continues.
        free_pages: a vacuum's free pages still left in the file.
    """

    rows: int = 0
    outbox_rows: int = 0
    paths: tuple[str, ...] = ()
    clip_paths: tuple[str, ...] = ()
    more: bool = False
    after: tuple[datetime, str] | None = None
    free_pages: int = 0


@dataclass(frozen=True, slots=True)
class VacuumState:
    """A SQLite file's auto_vacuum mode (``none``, ``full`` or ``incremental``) and free pages."""

    mode: str
    page_size: int
    page_count: int
    free_pages: int


def apply_step(engine: Engine, step: RetentionStep) -> StepResult:
    """Run one step in a transaction of its own (the writer thread calls this).

    Raises:
        ValueError: a naive cutoff or a limit below 1.
        sqlalchemy.exc.SQLAlchemyError: the database refused; nothing of the step is kept.
    """
    if isinstance(step, IncrementalVacuum):
        return _vacuum(engine, step.pages)
    if isinstance(step, (ExpireEvents, ExpireReviews, ExpireSnapshots)):
        require_utc(step.cutoff, "cutoff")
        if step.limit < 1:
            raise ValueError(f"limit must be >= 1, got {step.limit}")
    with Session(engine) as session, session.begin():
        if isinstance(step, ExpireEvents):
            return _expire_events(session, step)
        if isinstance(step, ExpireReviews):
            return _expire_reviews(session, step)
        if isinstance(step, ExpireSnapshots):
            return _expire_snapshots(session, step)
        if isinstance(step, ForgetSnapshots):
            return _forget_snapshots(session, step.paths)
        if isinstance(step, UnreferencedClips):
            return StepResult(clip_paths=tuple(sorted(
                set(step.paths) - _referenced(session, step.paths, EventRow.clip))))
        return StepResult(paths=tuple(sorted(set(step.paths) - _referenced(session, step.paths))))


def _unsent_alert() -> Exists:
    """True for an event with an outbox row not yet sent (correlated to the outer query)."""
    return exists().where(OutboxRow.event_id == EventRow.id, OutboxRow.sent_at.is_(None))


def _expire_events(session: Session, step: ExpireEvents) -> StepResult:
    query = select(EventRow.id, EventRow.snapshot, EventRow.clip).where(
        EventRow.end_time.is_not(None), EventRow.end_time < step.cutoff, ~_unsent_alert()
    )
    if step.keep_labelled:
        query = query.where(EventRow.operator_label.is_(None))
    rows = session.execute(query.order_by(EventRow.end_time, EventRow.id).limit(step.limit)).all()
    ids = [row.id for row in rows]
    if not ids:
        return StepResult()
    # Sent rows only, and the events again without unsent rows: another daemon on the same
    # PostgreSQL may have queued an alert since the select (it keeps its event).
    _keep_crossing_totals(session, ids)
    outbox = session.execute(
        delete(OutboxRow).where(OutboxRow.event_id.in_(ids), OutboxRow.sent_at.is_not(None)),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        delete(EventRow).where(EventRow.id.in_(ids), ~_unsent_alert()),
        execution_options={"synchronize_session": False},
    )
    kept = set(session.scalars(select(EventRow.id).where(EventRow.id.in_(ids))))
    paths = tuple(row.snapshot for row in rows if row.id not in kept and row.snapshot)
    clips = tuple(row.clip for row in rows if row.id not in kept and row.clip)
    return StepResult(
        rows=len(ids) - len(kept), outbox_rows=_rowcount(outbox), paths=paths, clip_paths=clips,
        more=len(ids) == step.limit,
    )


def _keep_crossing_totals(session: Session, ids: Sequence[str]) -> None:
    """Add the line crossings about to be deleted to ``crossing_totals`` (same transaction): the
    retained counters count "since the records began" and must not shrink at the next start."""
    groups = session.execute(
        select(EventRow.camera, EventRow.zone, EventRow.label, EventRow.direction, func.count())
        .where(EventRow.id.in_(ids), EventRow.kind == EventKind.LINE_CROSSING.value,
               EventRow.zone.is_not(None), EventRow.direction.is_not(None), ~_unsent_alert())
        .group_by(EventRow.camera, EventRow.zone, EventRow.label, EventRow.direction)
    ).all()
    for camera, line, label, direction, count in groups:
        key = {"camera": camera, "line": line, "label": label, "direction": direction}
        added = session.execute(
            update(CrossingTotalRow)
            .where(*(getattr(CrossingTotalRow, k) == v for k, v in key.items()))
            .values(count=CrossingTotalRow.count + count),
            execution_options={"synchronize_session": False},
        )
        if not _rowcount(added):
            session.add(CrossingTotalRow(**key, count=count))
            session.flush()


def _expire_reviews(session: Session, step: ExpireReviews) -> StepResult:
    query = select(ReviewRow.id, ReviewRow.end_time, ReviewRow.event_ids).where(
        ReviewRow.end_time.is_not(None), ReviewRow.end_time < step.cutoff
    )
    if step.after is not None:
        end, review_id = step.after
        end = require_utc(end, "after")
        query = query.where(or_(
            ReviewRow.end_time > end, and_(ReviewRow.end_time == end, ReviewRow.id > review_id)
        ))
    rows = session.execute(
        query.order_by(ReviewRow.end_time, ReviewRow.id).limit(step.limit)
    ).all()
    if not rows:
        return StepResult()
    named = sorted({event_id for row in rows for event_id in row.event_ids})
    stored: set[str] = set()
    for chunk in in_chunks(named):
        stored |= set(session.scalars(select(EventRow.id).where(EventRow.id.in_(chunk))))
    gone = [row.id for row in rows if not stored.intersection(row.event_ids)]
    for chunk in in_chunks(gone):
        session.execute(
            delete(ReviewRow).where(ReviewRow.id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
    last = rows[-1]
    return StepResult(rows=len(gone), more=len(rows) == step.limit, after=(last.end_time, last.id))


def _expire_snapshots(session: Session, step: ExpireSnapshots) -> StepResult:
    rows = session.execute(
        select(EventRow.id, EventRow.snapshot)
        .where(
            EventRow.end_time.is_not(None),
            EventRow.end_time < step.cutoff,
            EventRow.snapshot.is_not(None),
            EventRow.snapshot.startswith(step.prefix, autoescape=True),
            ~_unsent_alert(),
        )
        .order_by(EventRow.end_time, EventRow.id)
        .limit(step.limit)
    ).all()
    if not rows:
        return StepResult()
    session.execute(
        update(EventRow).where(EventRow.id.in_([row.id for row in rows])).values(snapshot=None),
        execution_options={"synchronize_session": False},
    )
    paths = tuple(row.snapshot for row in rows if row.snapshot)
    return StepResult(rows=len(rows), paths=paths, more=len(rows) == step.limit)


def _forget_snapshots(session: Session, paths: Sequence[str]) -> StepResult:
    held: set[str] = set()
    nulled = 0
    for chunk in in_chunks(sorted(set(paths))):
        held |= {
            path for path in session.scalars(
                select(EventRow.snapshot).where(
                    EventRow.snapshot.in_(chunk),
                    or_(EventRow.end_time.is_(None), _unsent_alert()),
                )
            ) if path is not None
        }
        nulled += _rowcount(session.execute(
            update(EventRow)
            .where(
                EventRow.snapshot.in_(chunk), EventRow.end_time.is_not(None), ~_unsent_alert()
            )
            .values(snapshot=None),
            execution_options={"synchronize_session": False},
        ))
    return StepResult(rows=nulled, paths=tuple(sorted(set(paths) - held)))


def _referenced(session: Session, paths: Sequence[str], column: Any = EventRow.snapshot) -> set[str]:
    """Which of ``paths`` some stored event has in ``column`` (its snapshot, or its clip)."""
    found: set[str] = set()
    for chunk in in_chunks(sorted(set(paths))):
        found |= {
            path for path in session.scalars(select(column).where(column.in_(chunk)))
            if path is not None
        }
    return found


def _vacuum(engine: Engine, pages: int) -> StepResult:
    if pages < 1:
        raise ValueError(f"pages must be >= 1, got {pages}")
    if engine.dialect.name != "sqlite":
        return StepResult()  # PostgreSQL's autovacuum reclaims space by itself
    with engine.connect() as connection:
        raw = cast(sqlite3.Connection, connection.connection.dbapi_connection)
        before = _pragma(raw, "freelist_count")
        # executescript, not execute: the sqlite3 module steps a statement that returns no rows
        # only once, and each step of incremental_vacuum frees a single page.
        raw.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
        after = _pragma(raw, "freelist_count")
        if after == 0:
            # Lets SQLite truncate the file now, not at the next automatic checkpoint; PASSIVE
            # never waits for readers.
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return StepResult(rows=max(0, before - after), free_pages=after, more=after > 0)


def vacuum_state(engine: Engine) -> VacuumState | None:
    """The SQLite file's auto_vacuum mode and free pages; None on PostgreSQL. Only reads."""
    if engine.dialect.name != "sqlite":
        return None
    with engine.connect() as connection:
        raw = cast(sqlite3.Connection, connection.connection.dbapi_connection)
        mode = {0: "none", 1: "full", 2: "incremental"}.get(_pragma(raw, "auto_vacuum"), "none")
        return VacuumState(
            mode=mode,
            page_size=_pragma(raw, "page_size"),
            page_count=_pragma(raw, "page_count"),
            free_pages=_pragma(raw, "freelist_count"),
        )


def _pragma(raw: sqlite3.Connection, name: str) -> int:
    row = raw.execute(f"PRAGMA {name}").fetchone()
    return int(row[0]) if row else 0


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)

