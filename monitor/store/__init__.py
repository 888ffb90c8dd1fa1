"""Durable storage: events and the MQTT outbox in SQLite or PostgreSQL.

The only package that imports SQLAlchemy or alembic. ``open_database`` creates the engine and
migrates the schema; ``EventWriter`` is the single writer thread (alerts, sent-marks and outbox
pruning: ``EventWriter.prune_sent_before``); ``queries`` is the read side; ``RetentionCleaner``
is the thread that deletes old events and snapshots (``[retention]``) through the writer.
"""

from monitor.store.cleaner import RetentionCleaner, RetentionReport
from monitor.store.db import StoreError, open_database
from monitor.store.queries import (
    claim_unowned_messages,
    count_unsent,
    delete_sent_before,
    get_event,
    list_events,
    pending_messages,
)
from monitor.store.writer import EventWriter

__all__ = [
    "EventWriter",
    "RetentionCleaner",
    "RetentionReport",
    "StoreError",
    "claim_unowned_messages",
    "count_unsent",
    "delete_sent_before",
    "get_event",
    "list_events",
    "open_database",
    "pending_messages",
]
