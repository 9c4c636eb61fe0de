"""users.email_key: one account per address whatever its case or Unicode form.

The key is NFC, Unicode case folding, NFC (see ``model/email_addresses.py``; repeated here
so this migration keeps meaning what it meant). It replaces the unique index on
``lower(email)``, which PostgreSQL and Python disagree on outside ASCII. Addresses that
were two accounts and are one address by the new rule stop the upgrade, naming them: an
operator decides which account keeps the address (change the other's with
``UpdateUser``), nothing is merged or dropped here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from watchword_server.storage.schema import MigrationRefused

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def _key(address: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", address).casefold())


def upgrade() -> None:
    op.add_column("users", sa.Column("email_key", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, email FROM users ORDER BY create_time, id")).all()
    owners: dict[str, str] = {}
    clashes: list[str] = []
    updates: list[dict[str, object]] = []
    for user_id, email in rows:
        key = _key(email)
        if key in owners:
            clashes.append(f"{owners[key]!r} and {email!r}")
        else:
            owners[key] = email
        stored = unicodedata.normalize("NFC", email)
        updates.append({"id": user_id, "key": key, "email": stored})
    if clashes:
        raise MigrationRefused(
            "these accounts have addresses that are one address once case and Unicode form "
            f"are ignored: {'; '.join(clashes[:20])}"
            f"{f' (and {len(clashes) - 20} more)' if len(clashes) > 20 else ''}. Give one "
            "account of each pair another address (AdminService.UpdateUser), then migrate again"
        )
    statement = sa.text("UPDATE users SET email_key = :key, email = :email WHERE id = :id")
    for start in range(0, len(updates), _BATCH):
        conn.execute(statement, updates[start : start + _BATCH])
    op.drop_index("uq_users_email_lower", table_name="users")
    op.create_index("uq_users_email_key", "users", ["email_key"], unique=True)
    # NOT NULL on PostgreSQL only: SQLite can add it only by rebuilding the table, and a
    # rebuild under its enforced foreign keys would cascade into sessions and memberships.
    # There every insert sets the key anyway.
    if conn.dialect.name == "postgresql":
        op.alter_column("users", "email_key", existing_type=sa.Text(), nullable=False)


def downgrade() -> None:
    op.drop_index("uq_users_email_key", table_name="users")
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.drop_column("users", "email_key")
