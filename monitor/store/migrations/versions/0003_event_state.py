"""What an alert subscriber needs of an event: alert sequence, newest sighting, stationary flag,
zones, dwell and why it ended.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

``seq`` is kept so the alerts of an event stay numbered across a restart: the END that start-up
reconciliation sends for an event a crash left open continues the event's sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("seq", "seen_at", "seen_score", "stationary", "zones", "dwell_s", "end_reason",
            "announced")


def upgrade() -> None:
    op.add_column("events", sa.Column("seq", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("events", sa.Column("seen_at", sa.DateTime(), nullable=True))
    op.add_column("events", sa.Column("seen_score", sa.Float(), nullable=True))
    op.add_column(
        "events",
        sa.Column("stationary", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("events", sa.Column("zones", sa.JSON(), nullable=True))
    op.add_column("events", sa.Column("dwell_s", sa.Float(), nullable=True))
    op.add_column("events", sa.Column("end_reason", sa.String(32), nullable=True))
    op.add_column(
        "events", sa.Column("announced", sa.Boolean(), nullable=False, server_default=sa.true())
    )
    # Start-up reconciliation looks for events still open.
    op.create_index("ix_events_end_time", "events", ["end_time"])


def downgrade() -> None:
    # Plain DROP COLUMN, as in 0002: a batch copy would drop the events table the outbox refers to.
    op.drop_index("ix_events_end_time", "events")
    for column in reversed(_COLUMNS):
        op.drop_column("events", column)
