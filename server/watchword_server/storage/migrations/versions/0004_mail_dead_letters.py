"""mail_outbox.dead_time: a mail that failed too often is given up, not retried forever.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
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
    # Nullable, no default: adding it rewrites nothing, on either database.
    op.add_column("mail_outbox", sa.Column("dead_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("mail_outbox", "dead_time")
