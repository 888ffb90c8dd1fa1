"""``events.clip``: the path of the event's MP4 clip (``[clips]``), and ``events_view`` with it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

Plain ADD/DROP COLUMN, no batch copy (as 0002): the outbox's foreign key forbids dropping the
events table once there are alerts. The view names its columns, so it is made again with the
new one (and, going down, as 0009 made it).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0009's columns, as it wrote them: a migration must not change when later code does.
_COLUMNS_0009 = (
    "id, camera, kind, label, track_id, zone, direction, start_time, end_time, {duration} "
    "AS duration_s, end_reason, score, seen_score, stationary, announced, dwell_s, snapshot, "
    "operator_label, created_at AS recorded_at"
)
_COLUMNS = _COLUMNS_0009.replace("snapshot, ", "snapshot, clip, ")
_DURATION = {
    "sqlite": "(julianday(end_time) - julianday(start_time)) * 86400.0",
    "postgresql": "EXTRACT(EPOCH FROM (end_time - start_time))",
}


def _create_view(columns: str) -> None:
    duration = _DURATION[op.get_bind().dialect.name]
    op.execute(sa.text(
        f"CREATE VIEW events_view AS SELECT {columns.format(duration=duration)} FROM events"
    ))


def upgrade() -> None:
    op.add_column("events", sa.Column("clip", sa.String(1024), nullable=True))
    op.execute(sa.text("DROP VIEW events_view"))
    _create_view(_COLUMNS)


def downgrade() -> None:
    op.execute(sa.text("DROP VIEW events_view"))
    op.drop_column("events", "clip")
    _create_view(_COLUMNS_0009)
