"""camera_offline events: a camera that sent no frames for ``[source] offline_event_s``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

No column changes: the kind is a string and the event has no track (allowed since 0005). The
revision exists so that a downgrade removes what the release before cannot read (it knows no
``camera_offline`` kind and no ``back_online`` end reason).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from monitor.types import EventKind

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KIND = EventKind.CAMERA_OFFLINE.value


def upgrade() -> None:
    pass


def downgrade() -> None:
    op.execute(sa.text(
        f"DELETE FROM outbox WHERE event_id IN (SELECT id FROM events WHERE kind = '{_KIND}')"
    ))
    op.execute(sa.text(f"DELETE FROM events WHERE kind = '{_KIND}'"))
