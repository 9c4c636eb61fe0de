"""Queries on the users table."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import FromClause

from watchword_server.model.email_addresses import email_key, stored_email
from watchword_server.model.records import UserRecord, UserStatus
from watchword_server.storage.models import AccountKey, Membership, Session, TotpFactor, User
from watchword_server.storage.repositories import login_failures as failure_rows

__all__ = [
    "EmailTaken",
    "StoredUser",
    "email_exists",
    "find_by_email",
    "find_for_login",
    "status_by_email",
    "delete_user",
    "get",
    "insert_user",
    "list_users",
    "lock_login_state",
    "login_find_statement",
    "login_read_statement",
    "password_hash_of",
    "set_password_hash",
    "to_record",
    "update_user",
]

_PUBLIC_COLUMNS = (
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


class EmailTaken(Exception):
    """The unique index on the address's key refused the insert or update."""


@dataclass(frozen=True)
class StoredUser:
    """A user row with its password hash, for the login flow only."""

    record: UserRecord
    password_hash: str
    second_factor: bool = False  # a confirmed second factor: the password alone is not enough


def to_record(row: Any) -> UserRecord:
    """Build a UserRecord from a row holding the public columns."""
    return UserRecord(
        id=row.id,
        email=row.email,
        first_name=row.first_name,
        last_name=row.last_name,
        status=UserStatus(row.status),
        email_verified=row.email_verified,
        create_time=row.create_time,
        update_time=row.update_time,
        extra=dict(row.extra or {}),
    )


async def email_exists(conn: AsyncConnection, email: str) -> bool:
    """Whether an account uses ``email`` (by its key: whatever its case or form)."""
    found = await conn.scalar(select(User.id).where(User.email_key == email_key(email)))
    return found is not None


# The login's statements are built once with bound parameters: a statement object caches
# its compiled form, so a login pays for executing them, not for building them (which
# costs about as much again on these machines).
_BY_EMAIL = User.email_key == bindparam("email")
# Read with the account, so asking a login for its second factor costs no round trip.
_SECOND_FACTOR = (
    select(TotpFactor.user_id)
    .where(TotpFactor.user_id == User.id, TotpFactor.confirmed_time.is_not(None))
    .exists()
    .label("second_factor")
)
_FIND_BY_EMAIL = select(*_PUBLIC_COLUMNS, User.password_hash, _SECOND_FACTOR).where(_BY_EMAIL)


@functools.cache
def _find_for_login(source: FromClause, counts: tuple[ColumnElement[Any], ...]) -> Select[Any]:
    # The counts are one row, so the left join yields exactly one, with or without a user.
    found = source.outerjoin(User, _BY_EMAIL)
    return select(*counts, *_PUBLIC_COLUMNS, User.password_hash, _SECOND_FACTOR).select_from(found)


def login_find_statement() -> Select[Any]:
    """``find_by_email``'s statement (parameter ``email``: the address's ``email_key``)."""
    return _FIND_BY_EMAIL


def login_read_statement(by_email: bool, by_client: bool) -> Select[Any]:
    """``find_for_login``'s statement for one shape of failure counts (parameters ``email``,
    the address's ``email_key``, and those of ``login_failures.recent_parameters``): the four
    counts, then the public columns, the password hash (NULL without a user) and whether
    the user has a confirmed second factor."""
    return _find_for_login(*failure_rows.counts_of(by_email, by_client))


async def status_by_email(conn: AsyncConnection, email: str) -> tuple[uuid.UUID, UserStatus] | None:
    """The id and status of the account with ``email`` (by its key), if any: the least a
    caller can read, so a known address costs next to what an unknown one does."""
    row = (
        await conn.execute(select(User.id, User.status).where(User.email_key == email_key(email)))
    ).one_or_none()
    return None if row is None else (row[0], UserStatus(row[1]))


async def find_by_email(conn: AsyncConnection, email: str) -> StoredUser | None:
    """The user with ``email`` (by its key) and its password hash, if any."""
    result = await conn.execute(_FIND_BY_EMAIL, {"email": email_key(email)})
    row = result.one_or_none()
    if row is None:
        return None
    return StoredUser(
        record=to_record(row),
        password_hash=row.password_hash,
        second_factor=bool(row.second_factor),
    )


async def find_for_login(
    conn: AsyncConnection, email: str, failures: failure_rows.RecentQuery | None
) -> tuple[StoredUser | None, failure_rows.Recent | None]:
    """``find_by_email`` and, when ``failures`` is given, the recent failures it names: what
    a login reads before checking the password, in one statement (one round trip).

    On a PostgreSQL connection with no transaction yet, the statement runs in autocommit: a
    single statement sees one snapshot either way, and this spares a BEGIN and a ROLLBACK
    (two round trips). The pool resets the connection when it is returned.
    """
    if conn.dialect.name == "postgresql" and not conn.in_transaction():
        await conn.execution_options(isolation_level="AUTOCOMMIT")
    if failures is None:
        return await find_by_email(conn, email), None
    source, counts, parameters = failure_rows.recent_columns(failures)
    statement = _find_for_login(source, counts)
    row = (await conn.execute(statement, {**parameters, "email": email_key(email)})).one()
    recent = failure_rows.recent_of(tuple(row)[: len(counts)])
    if row.id is None:
        return None, recent
    stored = StoredUser(
        record=to_record(row),
        password_hash=row.password_hash,
        second_factor=bool(row.second_factor),
    )
    return stored, recent


async def insert_user(
    conn: AsyncConnection,
    *,
    email: str,
    password_hash: str,
    first_name: str,
    last_name: str,
    status: UserStatus,
    email_verified: bool,
    extra: dict[str, Any],
    now: datetime,
) -> UserRecord:
    """Insert a user; raises EmailTaken when the address is in use (even by a racing call,
    and in another case or Unicode form)."""
    email = stored_email(email)
    record = UserRecord(
        id=uuid.uuid4(),
        email=email,
        first_name=first_name,
        last_name=last_name,
        status=status,
        email_verified=email_verified,
        create_time=now,
        update_time=now,
        extra=extra,
    )
    try:
        # A savepoint keeps the caller's transaction usable after a duplicate.
        async with conn.begin_nested():
            await conn.execute(
                insert(User).values(
                    id=record.id,
                    email=email,
                    email_key=email_key(email),
                    first_name=first_name,
                    last_name=last_name,
                    password_hash=password_hash,
                    status=status.value,
                    email_verified=email_verified,
                    extra=extra,
                    create_time=now,
                    update_time=now,
                )
            )
    except IntegrityError as error:
        raise EmailTaken(email) from error
    return record


async def set_password_hash(
    conn: AsyncConnection, user_id: uuid.UUID, password_hash: str, *, expected_old: str
) -> bool:
    """Replace a hash only if it is still ``expected_old`` (a concurrent change wins)."""
    result = await conn.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == expected_old)
        .values(password_hash=password_hash)
    )
    return result.rowcount == 1


async def get(
    conn: AsyncConnection, user_id: uuid.UUID, *, lock: bool = False
) -> UserRecord | None:
    """The user with ``user_id``, if any; with ``lock``, its row stays locked until the
    transaction ends (on PostgreSQL; SQLite's writers queue for the whole database)."""
    statement = select(*_PUBLIC_COLUMNS).where(User.id == user_id)
    if lock:
        statement = statement.with_for_update()
    result = await conn.execute(statement)
    row = result.one_or_none()
    return None if row is None else to_record(row)


async def password_hash_of(conn: AsyncConnection, user_id: uuid.UUID) -> str | None:
    """The stored password hash of a user, if the user exists."""
    found = await conn.scalar(select(User.password_hash).where(User.id == user_id))
    return None if found is None else str(found)


async def update_user(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    *,
    now: datetime,
    email: str | None = None,
    status: UserStatus | None = None,
    email_verified: bool | None = None,
    password_hash: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    extra: dict[str, Any] | None = None,
) -> UserRecord | None:
    """Change the given columns (None leaves one alone) and return the updated user."""
    values: dict[str, Any] = {"update_time": now}
    if email is not None:
        email = stored_email(email)
        values["email"] = email
        values["email_key"] = email_key(email)
    if status is not None:
        values["status"] = status.value
    if email_verified is not None:
        values["email_verified"] = email_verified
    if password_hash is not None:
        values["password_hash"] = password_hash
    if first_name is not None:
        values["first_name"] = first_name
    if last_name is not None:
        values["last_name"] = last_name
    if extra is not None:
        values["extra"] = extra
    statement = update(User).where(User.id == user_id).values(**values)
    statement = statement.returning(*_PUBLIC_COLUMNS)
    if email is None:
        row = (await conn.execute(statement)).one_or_none()
    else:
        try:  # a savepoint keeps the transaction usable after a duplicate address
            async with conn.begin_nested():
                row = (await conn.execute(statement)).one_or_none()
        except IntegrityError as error:
            raise EmailTaken(email) from error
    return None if row is None else to_record(row)


async def list_users(
    conn: AsyncConnection,
    *,
    status: UserStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[UserRecord]:
    """Users oldest first, optionally of one status, after the ``(create_time, id)`` given."""
    statement = select(*_PUBLIC_COLUMNS).order_by(User.create_time, User.id).limit(limit)
    if status is not None:
        statement = statement.where(User.status == status.value)
    if after is not None:
        statement = statement.where(tuple_(User.create_time, User.id) > after)
    return [to_record(row) for row in await conn.execute(statement)]


async def delete_user(conn: AsyncConnection, user_id: uuid.UUID) -> bool:
    """Delete a user with its sessions, keys and memberships; returns whether it existed."""
    for table in (Session, AccountKey, Membership):
        await conn.execute(delete(table).where(table.user_id == user_id))
    result = await conn.execute(delete(User).where(User.id == user_id))
    return result.rowcount == 1


_LOCK_LOGIN_STATE = (
    select(User.status, User.password_hash).where(User.id == bindparam("user_id")).with_for_update()
)
# set_config(..., is_local => true) is SET LOCAL as an expression, so it rides along in the
# same round trip; the setting is read at COMMIT, so setting it before the writes is enough.
_LOCK_LOGIN_STATE_NOT_DURABLE = _LOCK_LOGIN_STATE.add_columns(
    func.set_config(literal("synchronous_commit"), literal("off"), true())
)


async def lock_login_state(
    conn: AsyncConnection, user_id: uuid.UUID, *, durable: bool = True
) -> tuple[UserStatus, str] | None:
    """The user's status and password hash, locked until the transaction ends.

    With ``durable=False`` the transaction's commit, on PostgreSQL, returns before its WAL
    is flushed to disk (``synchronous_commit = off`` for this transaction alone, set in this
    same round trip). A crash of the database server may then lose the transaction, whole
    and never in part; it cannot make the database inconsistent. Only for writes whose loss
    the caller accepts.
    """
    statement = _LOCK_LOGIN_STATE
    if not durable and conn.dialect.name == "postgresql":
        statement = _LOCK_LOGIN_STATE_NOT_DURABLE
    row = (await conn.execute(statement, {"user_id": user_id})).one_or_none()
    return None if row is None else (UserStatus(row[0]), str(row[1]))
