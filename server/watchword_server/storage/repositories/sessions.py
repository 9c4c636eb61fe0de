"""Queries on the sessions table; tokens arrive here already digested."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import Session

__all__ = ["delete_by_digest", "delete_for_user", "insert_session", "touch_many"]


# Built once, so a login pays for executing it, not for building and compiling it.
_INSERT = insert(Session)


async def insert_session(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    token_digest: bytes,
    lifetime: int,
    remember: bool,
    client_ip: str,
    now: datetime,
    session_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Store a new session (with ``session_id``, or a new one) and return its id."""
    session_id = session_id or uuid.uuid4()
    await conn.execute(
        _INSERT,
        {
            "id": session_id,
            "user_id": user_id,
            "token_digest": token_digest,
            "lifetime": lifetime,
            "remember": remember,
            "client_ip": client_ip,
            "create_time": now,
            "last_seen_time": now,
        },
    )
    return session_id


async def touch_many(conn: AsyncConnection, used: Mapping[uuid.UUID, datetime]) -> None:
    """Slide many sessions' windows at once (each only forward)."""
    if not used:
        return
    statement = (
        update(Session)
        .where(Session.id == bindparam("b_id"), Session.last_seen_time < bindparam("b_when"))
        .values(last_seen_time=bindparam("b_when"))
        .execution_options(synchronize_session=False)
    )
    await conn.execute(
        statement, [{"b_id": session_id, "b_when": when} for session_id, when in used.items()]
    )


async def delete_by_digest(conn: AsyncConnection, token_digest: bytes) -> uuid.UUID | None:
    """Revoke one session; returns its user's id, or None if there was no such session."""
    result = await conn.execute(
        delete(Session).where(Session.token_digest == token_digest).returning(Session.user_id)
    )
    return result.scalar_one_or_none()


async def delete_for_user(
    conn: AsyncConnection, user_id: uuid.UUID, *, keep: uuid.UUID | None = None
) -> int:
    """Revoke every session of a user, optionally keeping one; returns how many went."""
    statement = delete(Session).where(Session.user_id == user_id)
    if keep is not None:
        statement = statement.where(Session.id != keep)
    result = await conn.execute(statement)
    return result.rowcount
