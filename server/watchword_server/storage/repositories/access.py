"""The access checks: each is one indexed query that answers with plain values.

A grant ``(name, table_name, record_id)`` matches a check when the names are equal and the
grant's table and record are empty (a wildcard) or equal to the check's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import InstrumentedAttribute

from watchword_server.domain.types import UserStatus
from watchword_server.storage.models import Group, Membership, Permission, Session, User

__all__ = [
    "Grant",
    "SessionAnswer",
    "group_permission",
    "session_membership",
    "session_permission",
    "user_membership",
    "user_permission",
]


@dataclass(frozen=True)
class Grant:
    """What a permission check asks about."""

    name: str
    table_name: str
    record_id: str


@dataclass(frozen=True)
class SessionAnswer:
    """A check made through a session: the session's state and the answer."""

    session_id: uuid.UUID
    lifetime: int
    last_seen_time: datetime
    status: UserStatus
    answer: bool


def _matches(grant: Grant) -> ColumnElement[bool]:
    return and_(
        Permission.name == grant.name,
        or_(Permission.table_name == "", Permission.table_name == grant.table_name),
        or_(Permission.record_id == "", Permission.record_id == grant.record_id),
    )


def _is_member(user_id: InstrumentedAttribute[uuid.UUID], group: str) -> ColumnElement[bool]:
    return exists().where(
        Membership.user_id == user_id,
        Membership.group_id == Group.id,
        Group.name == group,
    )


def _is_granted(user_id: InstrumentedAttribute[uuid.UUID], grant: Grant) -> ColumnElement[bool]:
    return exists().where(
        Membership.user_id == user_id,
        Permission.group_id == Membership.group_id,
        _matches(grant),
    )


async def user_membership(
    conn: AsyncConnection, user_id: uuid.UUID, group: str
) -> tuple[UserStatus, bool] | None:
    """The user's status and whether it is in ``group``; None if there is no such user."""
    row = (
        await conn.execute(
            select(User.status, _is_member(User.id, group).label("answer")).where(
                User.id == user_id
            )
        )
    ).one_or_none()
    return None if row is None else (UserStatus(row.status), bool(row.answer))


async def user_permission(
    conn: AsyncConnection, user_id: uuid.UUID, grant: Grant
) -> tuple[UserStatus, bool] | None:
    """The user's status and whether one of its groups holds a matching grant."""
    row = (
        await conn.execute(
            select(User.status, _is_granted(User.id, grant).label("answer")).where(
                User.id == user_id
            )
        )
    ).one_or_none()
    return None if row is None else (UserStatus(row.status), bool(row.answer))


async def _through_session(
    conn: AsyncConnection, token_digest: bytes, answer: ColumnElement[bool]
) -> SessionAnswer | None:
    row = (
        await conn.execute(
            select(
                Session.id,
                Session.lifetime,
                Session.last_seen_time,
                User.status,
                answer.label("answer"),
            )
            .join(User, User.id == Session.user_id)
            .where(Session.token_digest == token_digest)
        )
    ).one_or_none()
    if row is None:
        return None
    return SessionAnswer(
        session_id=row.id,
        lifetime=row.lifetime,
        last_seen_time=row.last_seen_time,
        status=UserStatus(row.status),
        answer=bool(row.answer),
    )


async def session_membership(
    conn: AsyncConnection, token_digest: bytes, group: str
) -> SessionAnswer | None:
    """Whether the session's user is in ``group``, with the session's state."""
    return await _through_session(conn, token_digest, _is_member(Session.user_id, group))


async def session_permission(
    conn: AsyncConnection, token_digest: bytes, grant: Grant
) -> SessionAnswer | None:
    """Whether the session's user holds a matching grant, with the session's state."""
    return await _through_session(conn, token_digest, _is_granted(Session.user_id, grant))


async def group_permission(conn: AsyncConnection, group: str, grant: Grant) -> bool:
    """Whether ``group`` itself holds a matching grant."""
    found = await conn.scalar(
        select(
            exists().where(Permission.group_id == Group.id, Group.name == group, _matches(grant))
        )
    )
    return bool(found)
