"""Operator labels on events: what a person said an event really was (``monitor label``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

Kept in their own columns, never in ``evidence`` (which the daemon rewrites on every update), so a
label survives later alerts of the same event and can be queried for ``monitor train --from-db``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("operator_label", sa.String(32), nullable=True))
    op.add_column("events", sa.Column("labelled_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch "move and copy" would drop the
    # events table, which the outbox's foreign key forbids once there are alerts.
    op.drop_column("events", "labelled_at")
    op.drop_column("events", "operator_label")
