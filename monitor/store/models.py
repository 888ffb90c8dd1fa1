"""The SQL schema: typed SQLAlchemy 2 models of the ``events`` and ``outbox`` tables.

The migrations under ``migrations/versions`` create exactly this schema; a test compares the two.
Datetimes are stored as naive UTC (portable across SQLite and PostgreSQL) and come back aware.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Deterministic constraint and index names, so migrations can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def require_utc(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` converted to UTC, refusing naive datetimes.

    Args:
        value: an aware datetime in any zone.
        what: name of the value, used in the error message.

    Returns:
        The same instant with ``tzinfo=timezone.utc``.

    Raises:
        ValueError: ``value`` is naive, so its zone would be a guess.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{what} {value.isoformat()} is naive; the store needs timezone-aware datetimes "
            "(e.g. datetime.now(timezone.utc))"
        )
    return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """A datetime column that stores naive UTC and returns aware UTC.

    Naive values are rejected on write: SQLite keeps no zone at all, so accepting them would
    silently mix local and UTC times.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return require_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class EventRow(Base):
    """One event (see ``monitor.types.Event``), inserted on start and updated until it ends."""

    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    label: Mapped[str] = mapped_column(String(64))
    # None for an event about a zone rather than one object (a crowd).
    track_id: Mapped[int | None] = mapped_column(Integer)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    score: Mapped[float] = mapped_column(Float)
    # [x1, y1, x2, y2] in pixels of the camera's frame.
    box: Mapped[list[float]] = mapped_column(JSON)
    zone: Mapped[str | None] = mapped_column(String(128))
    snapshot: Mapped[str | None] = mapped_column(String(1024))
    # The event's MP4 clip, set by the clip thread once written (never by an alert's upsert).
    clip: Mapped[str | None] = mapped_column(String(1024))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What an operator said the event really was (monitor label); training data for the model.
    operator_label: Mapped[str | None] = mapped_column(String(32))
    labelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Number of the event's newest alert (1 = its start); a restart's END continues it.
    seq: Mapped[int] = mapped_column(Integer, server_default="0")
    seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    seen_score: Mapped[float | None] = mapped_column(Float)
    stationary: Mapped[bool] = mapped_column(Boolean, server_default=false())
    zones: Mapped[list[str] | None] = mapped_column(JSON)
    dwell_s: Mapped[float | None] = mapped_column(Float)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # False: an object that never moved, recorded but never published (no outbox rows).
    announced: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # A line crossing's direction, "in" or "out" (counted per direction at start-up).
    direction: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class CrossingTotalRow(Base):
    """Line crossings of events that retention deleted: the retained counters are these totals
    plus the stored ``line_crossing`` events, so they keep growing across restarts."""

    __tablename__ = "crossing_totals"

    camera: Mapped[str] = mapped_column(String(64), primary_key=True)
    line: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class ReviewRow(Base):
    """One review item (see ``monitor.types.Review``), inserted when it opens, updated until it
    ends."""

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64), index=True)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    end_time: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    event_ids: Mapped[list[str]] = mapped_column(JSON)
    kinds: Mapped[list[str]] = mapped_column(JSON)
    labels: Mapped[list[str]] = mapped_column(JSON)
    zones: Mapped[list[str]] = mapped_column(JSON)
    seq: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class OutboxRow(Base):
    """One MQTT message waiting to be published; ``sent_at`` is set once the broker acked it."""

    __tablename__ = "outbox"
    __table_args__ = (
        # Partial index: a publisher's "my unsent rows after id N" scan touches only unsent rows.
        Index(
            "ix_outbox_unsent",
            "instance",
            "id",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
        # AUTOINCREMENT: without it SQLite reuses ids after retention deletes the newest rows,
        # and a publisher that remembers "last id sent" would skip the reused ids.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # The event the message is about; for a review message, the event that changed the review.
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    camera: Mapped[str] = mapped_column(String(64))
    # The daemon that wrote it and alone publishes it ([daemon] instance); NULL: written before
    # instances existed, claimed by the first daemon to start.
    instance: Mapped[str | None] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
