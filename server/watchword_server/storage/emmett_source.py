"""Reads an Emmett 2.8 database (SQLite or PostgreSQL) for ``watchword import-emmett``.

The source is opened read-only, so nothing in the Emmett app's database can change (our
own engine would switch an SQLite file to WAL, for one). Its tables are found by
reflection: the user table may be renamed and carry extra columns, and the columns of
memberships and events that point at users are found by their foreign keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, Text, inspect, select, type_coerce
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from watchword_server.model.emmett import (
    EmmettDatabase,
    EmmettEvent,
    EmmettGroup,
    EmmettMembership,
    EmmettPermission,
    EmmettUser,
)
from watchword_server.storage.db import normalize_url

__all__ = ["EmmettSourceError", "describe_source", "read_emmett"]

GROUPS, MEMBERSHIPS, PERMISSIONS, EVENTS = (
    "auth_groups",
    "auth_memberships",
    "auth_permissions",
    "auth_events",
)
# The stock user model's columns; any other column of the user table is the app's own.
_USER_COLUMNS = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "email",
        "password",
        "registration_key",
        "reset_password_key",
        "registration_id",
        "first_name",
        "last_name",
    }
)
_USER_SIGNATURE = frozenset({"email", "password", "registration_key"})


class EmmettSourceError(Exception):
    """The source cannot be read as an Emmett database; the message says why."""


def describe_source(url: str) -> str:
    """The source's name in reports and in ``emmett_imports``: its URL without password
    (an SQLite file by its absolute path)."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return f"sqlite:///{Path(parsed.database).resolve()}"
    bare = parsed.set(drivername=parsed.get_backend_name(), password=None)
    return bare.render_as_string(hide_password=False)


def _read_only_engine(url: str) -> AsyncEngine:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise EmmettSourceError("an SQLite source needs a file: sqlite:///path/to/app.sqlite")
        path = Path(parsed.database)
        if not path.is_file():
            raise EmmettSourceError(f"no such SQLite file: {path}")
        # mode=ro: the file is only read (no journal switch, no accidental write).
        ro = f"sqlite+aiosqlite:///file:{path.resolve()}?mode=ro&uri=true"
        return create_async_engine(ro, poolclass=NullPool)
    if parsed.get_backend_name() != "postgresql":
        raise EmmettSourceError(
            f"unsupported source {parsed.get_backend_name()!r}: give an sqlite:/// or "
            "postgresql:// URL"
        )
    return create_async_engine(
        parsed,
        poolclass=NullPool,
        connect_args={"options": "-c default_transaction_read_only=on", "connect_timeout": 10},
    )


async def read_emmett(url: str, user_table: str = "auth_users") -> EmmettDatabase:
    """Read every auth row of the Emmett database at ``url``.

    Raises:
        EmmettSourceError: the database cannot be reached or lacks Emmett's tables.
    """
    engine = _read_only_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_read, user_table)
    except DBAPIError as error:
        reason = (str(error.orig).strip().splitlines() or ["no reason given"])[0]
        raise EmmettSourceError(f"cannot read {describe_source(url)}: {reason}") from error
    finally:
        await engine.dispose()


def _read(conn: Connection, user_table: str) -> EmmettDatabase:
    names = set(inspect(conn).get_table_names())
    if user_table not in names:
        look_alike = sorted(
            name
            for name in names
            if _USER_SIGNATURE <= {column["name"] for column in inspect(conn).get_columns(name)}
        )
        hint = f"; tables with Emmett's user columns: {', '.join(look_alike)}" if look_alike else ""
        raise EmmettSourceError(f"no user table {user_table!r} (see --user-table){hint}")
    missing = [name for name in (GROUPS, MEMBERSHIPS, PERMISSIONS, EVENTS) if name not in names]
    if missing:
        raise EmmettSourceError(f"not an Emmett auth database: no table {', '.join(missing)}")
    metadata = MetaData()
    try:
        users = Table(user_table, metadata, autoload_with=conn)
        tables = {
            name: Table(name, metadata, autoload_with=conn)
            for name in (GROUPS, MEMBERSHIPS, PERMISSIONS, EVENTS)
        }
    except NoSuchTableError as error:  # pragma: no cover - listed a moment ago
        raise EmmettSourceError(f"cannot read table {error}") from error
    lacking = _USER_SIGNATURE - set(users.c.keys())
    if lacking:
        raise EmmettSourceError(f"{user_table!r} lacks Emmett's columns {sorted(lacking)}")
    extra_columns = tuple(name for name in users.c.keys() if name not in _USER_COLUMNS)
    membership_user = _pointer(tables[MEMBERSHIPS], user_table, "user")
    membership_group = _pointer(tables[MEMBERSHIPS], GROUPS, "auth_group")
    event_user = _pointer(tables[EVENTS], user_table, "user")
    permission_group = _pointer(tables[PERMISSIONS], GROUPS, "auth_group")
    return EmmettDatabase(
        user_table=user_table,
        extra_columns=extra_columns,
        users=tuple(
            EmmettUser(
                id=int(row["id"]),
                email=_text(row.get("email")),
                password=_text(row.get("password")),
                registration_key=_text(row.get("registration_key")),
                reset_password_key=_text(row.get("reset_password_key")),
                first_name=_text(row.get("first_name")),
                last_name=_text(row.get("last_name")),
                created_at=_time(row.get("created_at")),
                updated_at=_time(row.get("updated_at")),
                extra={name: row[name] for name in extra_columns},
            )
            for row in _rows(conn, users)
        ),
        groups=tuple(
            EmmettGroup(
                id=int(row["id"]),
                role=_text(row.get("role")),
                description=_text(row.get("description")),
                created_at=_time(row.get("created_at")),
            )
            for row in _rows(conn, tables[GROUPS])
        ),
        memberships=tuple(
            EmmettMembership(
                id=int(row["id"]),
                user_id=_int(row.get(membership_user)),
                group_id=_int(row.get(membership_group)),
                created_at=_time(row.get("created_at")),
            )
            for row in _rows(conn, tables[MEMBERSHIPS])
        ),
        permissions=tuple(
            EmmettPermission(
                id=int(row["id"]),
                group_id=_int(row.get(permission_group)),
                name=_text(row.get("name")),
                table_name=None if row.get("table_name") is None else str(row["table_name"]),
                record_id=_int(row.get("record_id")),
                created_at=_time(row.get("created_at")),
            )
            for row in _rows(conn, tables[PERMISSIONS])
        ),
        events=tuple(
            EmmettEvent(
                id=int(row["id"]),
                user_id=_int(row.get(event_user)),
                description=_text(row.get("description")),
                origin=_text(row.get("origin")),
                client_ip=_text(row.get("client_ip")),
                created_at=_time(row.get("created_at")),
            )
            for row in _rows(conn, tables[EVENTS])
        ),
    )


def _pointer(table: Table, target: str, default: str) -> str:
    """The column of ``table`` with a foreign key to ``target`` (Emmett names it after the
    relation, which an app can change)."""
    for key in table.foreign_keys:
        if key.column.table.name == target:
            return str(key.parent.name)
    return default


def _rows(conn: Connection, table: Table) -> Sequence[dict[str, Any]]:
    # Times as the driver gives them (SQLite: text), parsed by _time, so one odd value
    # is reported rather than failing inside the driver's converter.
    columns = [
        type_coerce(column, Text).label(column.name)
        if column.name in ("created_at", "updated_at")
        else column
        for column in table.c
    ]
    result = conn.execute(select(*columns).order_by(table.c.id))
    return [dict(row._mapping) for row in result]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    """A naive UTC time from a datetime or Emmett's text form; None when unreadable."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None
