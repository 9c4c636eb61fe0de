"""events.data: the structured detail an application gives with AdminService.LogEvent.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # A constant server default: PostgreSQL (11+) adds the column without rewriting the
    # table, SQLite without copying it, and every existing event reads as having no data.
    op.add_column(
        "events",
        sa.Column("data", JSON_TYPE, nullable=False, server_default=sa.text("'{}'")),
    )


def downgrade() -> None:
    op.drop_column("events", "data")
