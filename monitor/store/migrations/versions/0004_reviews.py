"""Review items: one per period of activity on a camera, grouping its events.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Their MQTT messages go through the same outbox as event alerts (so they are durable and keep
their order with the events of the camera); such an outbox row names the event that changed
the review.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("camera", sa.String(64), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
    )
    for column in ("camera", "start_time", "end_time", "severity"):
        op.create_index(f"ix_reviews_{column}", "reviews", [column])


def downgrade() -> None:
    op.drop_table("reviews")
