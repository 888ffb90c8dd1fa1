"""Initial schema: events and outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Plain ``sa.DateTime`` here rather than the models' ``UtcDateTime``: the decorator only changes how
Python values are converted, the column is the same, and migrations must not import code that
later revisions may change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("zone", sa.String(128), nullable=True),
        sa.Column("snapshot", sa.String(1024), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_camera", "events", ["camera"])
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_start_time", "events", ["start_time"])

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_outbox_event_id_events"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        # SQLite: never reuse ids of deleted rows (the publisher's cursor is "last id sent").
        sqlite_autoincrement=True,
    )
    op.create_index("ix_outbox_event_id", "outbox", ["event_id"])
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    op.drop_index("ix_outbox_event_id", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_events_start_time", table_name="events")
    op.drop_index("ix_events_kind", table_name="events")
    op.drop_index("ix_events_camera", table_name="events")
    op.drop_table("events")
