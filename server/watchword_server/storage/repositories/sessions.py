"""Queries on the sessions table; tokens arrive here already digested."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.domain.types import UserRecord
from watchword_server.storage.models import Session, User
from watchword_server.storage.repositories.users import to_record

__all__ = [
    "SessionRow",
    "delete_by_digest",
    "delete_for_user",
    "find_with_user",
    "insert_session",
    "touch",
]


@dataclass(frozen=True)
class SessionRow:
    """A session with its owner, as Introspect needs it."""

    id: uuid.UUID
    lifetime: int
    last_seen_time: datetime
    user: UserRecord


async def insert_session(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    token_digest: bytes,
    lifetime: int,
    remember: bool,
    client_ip: str,
    now: datetime,
) -> uuid.UUID:
    """Store a new session and return its id."""
    session_id = uuid.uuid4()
    await conn.execute(
        insert(Session).values(
            id=session_id,
            user_id=user_id,
            token_digest=token_digest,
            lifetime=lifetime,
            remember=remember,
            client_ip=client_ip,
            create_time=now,
            last_seen_time=now,
        )
    )
    return session_id


async def find_with_user(conn: AsyncConnection, token_digest: bytes) -> SessionRow | None:
    """One indexed join: the session with ``token_digest`` and its user."""
    result = await conn.execute(
        select(
            Session.id.label("session_id"),
            Session.lifetime,
            Session.last_seen_time,
            User.id,
            User.email,
            User.first_name,
            User.last_name,
            User.status,
            User.email_verified,
            User.create_time,
            User.update_time,
            User.extra,
        )
        .join(User, User.id == Session.user_id)
        .where(Session.token_digest == token_digest)
    )
    row = result.one_or_none()
    if row is None:
        return None
    return SessionRow(
        id=row.session_id,
        lifetime=row.lifetime,
        last_seen_time=row.last_seen_time,
        user=to_record(row),
    )


async def touch(conn: AsyncConnection, session_id: uuid.UUID, now: datetime) -> None:
    """Slide a session's window: record that it was used at ``now``."""
    await conn.execute(
        update(Session)
        .where(Session.id == session_id, Session.last_seen_time < now)
        .values(last_seen_time=now)
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
