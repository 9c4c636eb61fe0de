"""service_keys.client_subject: a key may be bound to a client certificate's subject.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: existing keys stay unbound, and nothing is rewritten.
    op.add_column("service_keys", sa.Column("client_subject", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("service_keys", "client_subject")
