"""Login failures, to throttle password guessing per account and per client address.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only autoincrements an INTEGER PRIMARY KEY.
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", ID_TYPE, autoincrement=True, nullable=False),
        sa.Column("email_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(
        "ix_login_failures_email_key_time", "login_failures", ["email_key", "create_time"]
    )
    op.create_index(
        "ix_login_failures_client_ip_time", "login_failures", ["client_ip", "create_time"]
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_client_ip_time", table_name="login_failures")
    op.drop_index("ix_login_failures_email_key_time", table_name="login_failures")
    op.drop_table("login_failures")
