"""The reads on the hot path (access checks, Introspect, service keys): one indexed query each.

Each lookup is written once, with SQLAlchemy Core, as a function of its parameters. On the
embedded SQLite file it runs through the engine, one statement per lookup. On PostgreSQL
it is compiled once and prepared on each connection of a small ``PreparedPool`` (see there
for why not a psycopg pool): no ORM, no SQLAlchemy execution per call, no BEGIN/COMMIT
round trips, one round trip per lookup.

A grant ``(name, table_name, record_id)`` matches a check when the names are equal and the
grant's table and record are empty (a wildcard) or equal to the check's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword_server.model.records import Grant, UserRecord, UserStatus
from watchword_server.storage.db import Database
from watchword_server.storage.models import Group, Membership, Permission, ServiceKey, Session, User
from watchword_server.storage.pg_prepared import PgStatement, PreparedPool, compile_statement

__all__ = [
    "PG_STATEMENTS",
    "CheckReads",
    "KeyRow",
    "SessionAnswer",
    "SessionRow",
    "UserAnswer",
    "user_record",
]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session with its owner."""

    id: uuid.UUID
    lifetime: int
    last_seen_time: datetime
    user: UserRecord


@dataclass(frozen=True, slots=True)
class SessionAnswer:
    """A check made through a session: the session with its owner, and the answer."""

    session: SessionRow
    answer: bool


@dataclass(frozen=True, slots=True)
class UserAnswer:
    """A check on a user: its status and the answer."""

    status: UserStatus
    answer: bool


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A service key as a check needs it."""

    id: uuid.UUID
    name: str
    scope: str
    client_subject: str | None


# --- the lookups ---------------------------------------------------------------------

_Statement: TypeAlias = Select[*tuple[Any, ...]]
_Params: TypeAlias = Mapping[str, ColumnElement[Any]]


@dataclass(frozen=True)
class _Lookup:
    """A statement as a function of its parameters, and their PostgreSQL types."""

    name: str
    parameters: Mapping[str, str]  # name -> PostgreSQL type of one value
    build: Callable[[_Params], _Statement]


_USER_COLUMNS = (
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
_SESSION_COLUMNS = (Session.id, Session.lifetime, Session.last_seen_time, *_USER_COLUMNS)
_GRANT = {"name": "text", "table_name": "text", "record_id": "text"}


def _grant_matches(p: _Params) -> ColumnElement[bool]:
    return and_(
        Permission.name == p["name"],
        or_(Permission.table_name == "", Permission.table_name == p["table_name"]),
        or_(Permission.record_id == "", Permission.record_id == p["record_id"]),
    )


def _is_member(user_id: Any, p: _Params) -> ColumnElement[bool]:
    return exists().where(
        Membership.user_id == user_id, Membership.group_id == Group.id, Group.name == p["group"]
    )


def _is_granted(user_id: Any, p: _Params) -> ColumnElement[bool]:
    return exists().where(
        Membership.user_id == user_id,
        Permission.group_id == Membership.group_id,
        _grant_matches(p),
    )


def _by_session(p: _Params, answer: ColumnElement[bool] | None) -> _Statement:
    columns = _SESSION_COLUMNS if answer is None else (*_SESSION_COLUMNS, answer.label("answer"))
    return (
        select(*columns)
        .join(User, User.id == Session.user_id)
        .where(Session.token_digest == p["digest"])
    )


def _by_user(p: _Params, answer: ColumnElement[bool]) -> _Statement:
    return select(User.status, answer.label("answer")).where(User.id == p["user_id"])


_SERVICE_KEY = _Lookup(
    "service_key",
    {"digest": "bytea"},
    lambda p: select(
        ServiceKey.id, ServiceKey.name, ServiceKey.scope, ServiceKey.client_subject
    ).where(ServiceKey.key_digest == p["digest"]),
)
_SESSION = _Lookup("session", {"digest": "bytea"}, lambda p: _by_session(p, None))
_SESSION_MEMBERSHIP = _Lookup(
    "session_membership",
    {"digest": "bytea", "group": "text"},
    lambda p: _by_session(p, _is_member(Session.user_id, p)),
)
_SESSION_PERMISSION = _Lookup(
    "session_permission",
    {"digest": "bytea", **_GRANT},
    lambda p: _by_session(p, _is_granted(Session.user_id, p)),
)
_USER_MEMBERSHIP = _Lookup(
    "user_membership",
    {"user_id": "uuid", "group": "text"},
    lambda p: _by_user(p, _is_member(User.id, p)),
)
_USER_PERMISSION = _Lookup(
    "user_permission",
    {"user_id": "uuid", **_GRANT},
    lambda p: _by_user(p, _is_granted(User.id, p)),
)
_GROUP_PERMISSION = _Lookup(
    "group_permission",
    {"group": "text", **_GRANT},
    lambda p: select(
        exists().where(Permission.group_id == Group.id, Group.name == p["group"], _grant_matches(p))
    ),
)


# --- running them: PostgreSQL ----------------------------------------------------------


class _Prepared:
    """A lookup as a prepared statement on the ``PreparedPool``."""

    def __init__(self, statement: PgStatement, pool: PreparedPool) -> None:
        self._statement = statement
        self._pool = pool

    async def one(self, values: Mapping[str, Any]) -> Sequence[Any] | None:
        return await self._pool.fetch_one(self._statement, values)


# --- running them: SQLite --------------------------------------------------------------


def _bound(lookup: _Lookup) -> _Statement:
    return lookup.build({name: bindparam(name) for name in lookup.parameters})


class _OneByOne:
    """The lookup as a plain statement through SQLAlchemy, one call at a time."""

    def __init__(self, lookup: _Lookup, engine: AsyncEngine) -> None:
        self._statement = _bound(lookup)
        self._engine = engine

    async def one(self, values: Mapping[str, Any]) -> Sequence[Any] | None:
        async with self._engine.connect() as conn:
            result = await conn.execute(self._statement, dict(values))
            return result.first()


# --- rows ------------------------------------------------------------------------------


def user_record(row: Sequence[Any], offset: int) -> UserRecord:
    """The UserRecord in ``row`` from ``offset`` on, in the users' public column order."""
    (user_id, email, first_name, last_name, status, verified, created, updated, extra) = row[
        offset : offset + 9
    ]
    return UserRecord(
        id=user_id,
        email=email,
        first_name=first_name,
        last_name=last_name,
        status=UserStatus(status),
        email_verified=verified,
        create_time=_utc(created),
        update_time=_utc(updated),
        extra=dict(extra or {}),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _session(row: Sequence[Any]) -> SessionRow:
    return SessionRow(
        id=row[0], lifetime=row[1], last_seen_time=_utc(row[2]), user=user_record(row, 3)
    )


def _grant(grant: Grant) -> dict[str, str]:
    return {"name": grant.name, "table_name": grant.table_name, "record_id": grant.record_id}


_LOOKUPS = (
    _SERVICE_KEY,
    _SESSION,
    _SESSION_MEMBERSHIP,
    _SESSION_PERMISSION,
    _USER_MEMBERSHIP,
    _USER_PERMISSION,
    _GROUP_PERMISSION,
)


# Each lookup as a prepared statement, for the PostgreSQL PreparedPool.
PG_STATEMENTS = {
    lookup.name: compile_statement(f"watchword_{lookup.name}", _bound(lookup))
    for lookup in _LOOKUPS
}


class CheckReads:
    """The hot-path reads: on PostgreSQL as prepared statements on ``pool`` (which must hold
    ``PG_STATEMENTS``), on SQLite through the engine."""

    def __init__(self, database: Database, pool: PreparedPool | None) -> None:
        self._runners: dict[str, _Prepared | _OneByOne]
        if pool is not None:
            self._runners = {
                name: _Prepared(statement, pool) for name, statement in PG_STATEMENTS.items()
            }
        else:
            engine = database.engine
            self._runners = {lookup.name: _OneByOne(lookup, engine) for lookup in _LOOKUPS}

    async def service_key(self, digest: bytes) -> KeyRow | None:
        """The service key with this digest, if any."""
        row = await self._runners["service_key"].one({"digest": digest})
        if row is None:
            return None
        return KeyRow(id=row[0], name=row[1], scope=row[2], client_subject=row[3])

    async def session(self, digest: bytes) -> SessionRow | None:
        """The session with this token digest and its owner, if any."""
        row = await self._runners["session"].one({"digest": digest})
        return None if row is None else _session(row)

    async def session_membership(self, digest: bytes, group: str) -> SessionAnswer | None:
        """The session (with its owner) and whether the owner is in ``group``."""
        values = {"digest": digest, "group": group}
        row = await self._runners["session_membership"].one(values)
        return None if row is None else SessionAnswer(_session(row), bool(row[-1]))

    async def session_permission(self, digest: bytes, grant: Grant) -> SessionAnswer | None:
        """The session (with its owner) and whether the owner holds a matching grant."""
        values = {"digest": digest, **_grant(grant)}
        row = await self._runners["session_permission"].one(values)
        return None if row is None else SessionAnswer(_session(row), bool(row[-1]))

    async def user_membership(self, user_id: uuid.UUID, group: str) -> UserAnswer | None:
        """The user's status and whether it is in ``group``; None if there is no such user."""
        row = await self._runners["user_membership"].one({"user_id": user_id, "group": group})
        return None if row is None else UserAnswer(UserStatus(row[0]), bool(row[1]))

    async def user_permission(self, user_id: uuid.UUID, grant: Grant) -> UserAnswer | None:
        """The user's status and whether one of its groups holds a matching grant."""
        values = {"user_id": user_id, **_grant(grant)}
        row = await self._runners["user_permission"].one(values)
        return None if row is None else UserAnswer(UserStatus(row[0]), bool(row[1]))

    async def group_permission(self, group: str, grant: Grant) -> bool:
        """Whether ``group`` itself holds a matching grant."""
        row = await self._runners["group_permission"].one({"group": group, **_grant(grant)})
        return bool(row is not None and row[0])
