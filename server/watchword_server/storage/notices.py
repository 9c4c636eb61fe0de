"""Change notices on PostgreSQL: one NOTIFY per write that can change a check's answer.

A notification is queued inside the writer's transaction and delivered to every listener
when, and only when, that transaction commits; PostgreSQL delivers the notifications of
different transactions in commit order. The payload starts with the transaction's id
(``pg_current_xact_id()``), which is the change's revision.
"""

from __future__ import annotations

from sqlalchemy import text

from watchword_server.storage.db import Connection

__all__ = ["CHANGES_CHANNEL", "MAX_PAYLOAD", "notify_change"]

CHANGES_CHANNEL = "watchword_changes"
"""The channel every server process LISTENs on to drop the cached answers a change touched."""

MAX_PAYLOAD = 7000
"""PostgreSQL refuses payloads of 8000 bytes or more; longer changes are sent as "all"."""

# pg_current_xact_id() is the same value for the whole transaction (and assigns one if the
# transaction had none yet).
_NOTIFY = text(
    "SELECT pg_current_xact_id()::text, "
    "pg_notify(:channel, pg_current_xact_id()::text || ' ' || :body)"
)


async def notify_change(conn: Connection, body: str) -> str:
    """Queue ``body`` on CHANGES_CHANNEL within the caller's transaction; returns the
    transaction id that prefixes the delivered payload ("<xid> <body>")."""
    result = await conn.execute(_NOTIFY, {"channel": CHANGES_CHANNEL, "body": body})
    return str(result.scalar_one())
