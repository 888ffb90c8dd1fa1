"""Outbox rows belong to the daemon instance that wrote them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Several daemons may share one PostgreSQL database. Each publishes only its own rows: a publisher
that read everyone's rows published other daemons' alerts a second time, and, reading "unsent
rows after the last id I published", skipped a row that another daemon's transaction committed
after a higher id. One daemon has one writer thread, so its own rows commit in id order.

Rows written before this revision have no instance (NULL); the first daemon to start claims them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("instance", sa.String(64), nullable=True))
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["instance", "id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("instance")
    op.create_index(
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
