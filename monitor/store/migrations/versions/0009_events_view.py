"""The ``events_view`` for people who query the database directly, and an index on
``events.created_at`` for ``monitor events --follow``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

The view is the documented, stable way in (docs/database.md): one row per event with its
duration in seconds and without the columns that only the daemon needs. Its SQL differs per
dialect only in how a duration is computed. A later migration that rebuilds the events table
on SQLite (batch mode copies and renames it) must drop the view first and create it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "id, camera, kind, label, track_id, zone, direction, start_time, end_time, {duration} "
    "AS duration_s, end_reason, score, seen_score, stationary, announced, dwell_s, snapshot, "
    "operator_label, created_at AS recorded_at"
)
_DURATION = {
    "sqlite": "(julianday(end_time) - julianday(start_time)) * 86400.0",
    "postgresql": "EXTRACT(EPOCH FROM (end_time - start_time))",
}


def upgrade() -> None:
    op.create_index("ix_events_created_at", "events", ["created_at"])
    duration = _DURATION[op.get_bind().dialect.name]
    op.execute(sa.text(
        f"CREATE VIEW events_view AS SELECT {_COLUMNS.format(duration=duration)} FROM events"
    ))


def downgrade() -> None:
    op.execute(sa.text("DROP VIEW events_view"))
    op.drop_index("ix_events_created_at", table_name="events")
