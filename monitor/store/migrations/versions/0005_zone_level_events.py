"""Events that belong to no single track (a crowd in a zone), and the direction of a line crossing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

``track_id`` becomes nullable: a ``crowd`` event is about a zone, not one object. ``direction``
(``in``/``out``) is kept in a column, not only in the evidence, because the daemon counts a line's
crossings per direction at start-up (the retained counters continue across restarts).

SQLite cannot relax NOT NULL in place: batch mode copies the table, which other tables' foreign
keys point at, so ``monitor.store.db.migrate`` runs migrations with SQLite's foreign-key
enforcement off and checks every reference afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from monitor.types import EventKind

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The kinds this revision brought, as they were spelled then (a migration never changes).
_NEW_KINDS = (EventKind.CROWD.value, EventKind.LINE_CROSSING.value)


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.alter_column("track_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("direction", sa.String(8), nullable=True))


def downgrade() -> None:
    # The release before this one cannot read these kinds (nor a null track): their events and
    # messages go. Reviews keep naming them; their ids simply no longer resolve.
    kinds = ", ".join(f"'{kind}'" for kind in _NEW_KINDS)
    op.execute(sa.text(
        f"DELETE FROM outbox WHERE event_id IN (SELECT id FROM events WHERE kind IN ({kinds}))"
    ))
    op.execute(sa.text(f"DELETE FROM events WHERE kind IN ({kinds})"))
    with op.batch_alter_table("events") as batch:
        batch.drop_column("direction")
        batch.alter_column("track_id", existing_type=sa.Integer(), nullable=False)
