"""Totals of line crossings whose events retention deleted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

The retained crossing counters continue from the store at start-up. With retention deleting old
``line_crossing`` events, counting the stored events alone would make the counters go down after
a restart; retention adds what it deletes to these totals in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crossing_totals",
        sa.Column("camera", sa.String(64), primary_key=True),
        sa.Column("line", sa.String(128), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("direction", sa.String(8), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crossing_totals")
