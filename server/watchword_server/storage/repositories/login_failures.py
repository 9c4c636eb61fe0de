"""Queries on login_failures: recent failed password checks by address and by client.

A password check takes its place among the failures *before* it is made (``reserve``): the
count and the insert run under a lock on the address and the client (PostgreSQL advisory
locks, taken by ``lock_statement`` just before the transaction and given back just after
it), so parallel guesses cannot all read a count under the limit and then all be checked.
A check that succeeds gives its place back (``release``); one that fails keeps it as its
failure.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Integer,
    LargeBinary,
    Select,
    String,
    Subquery,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    false,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import FromClause

from watchword_server.storage.models import LoginFailure, UTCDateTime

__all__ = [
    "NewAttempt",
    "Recent",
    "RecentQuery",
    "counts_of",
    "confirm",
    "counts_statement",
    "forget",
    "lock_parameters",
    "lock_statement",
    "prune",
    "recent",
    "recent_columns",
    "recent_of",
    "recent_parameters",
    "release",
    "reserve",
    "reserve_parameters",
    "reserve_statement",
]


class Recent:
    """How many failures a key and a client have had since a time, and the oldest of each."""

    __slots__ = ("by_client", "by_email", "oldest_by_client", "oldest_by_email")

    def __init__(
        self,
        by_email: int,
        oldest_by_email: datetime | None,
        by_client: int,
        oldest_by_client: datetime | None,
    ) -> None:
        self.by_email = by_email
        self.oldest_by_email = oldest_by_email
        self.by_client = by_client
        self.oldest_by_client = oldest_by_client


@dataclass(frozen=True)
class RecentQuery:
    """Which failures to count: those since ``since`` of the address with ``email_key`` and
    of ``client_ip``; a ``None`` key or an empty address leaves that count out (zero)."""

    email_key: bytes | None
    client_ip: str
    since: datetime
    attempt: NewAttempt | None = None
    """The check about to be made, to reserve a place for (see the module doc)."""


@dataclass(frozen=True)
class NewAttempt:
    """A password check's place among the failures: its address key and client, and the
    limits (0: none) under which it may take one."""

    email_key: bytes
    client_ip: str
    now: datetime
    email_limit: int
    client_limit: int


def _counted(matches: ColumnElement[bool], name: str) -> Subquery:
    # An aggregate without GROUP BY: always exactly one row, through the index on
    # (matches' column, create_time).
    return (
        select(func.count().label("n"), func.min(LoginFailure.create_time).label("oldest"))
        .where(matches, LoginFailure.create_time > bindparam("failures_since"))
        .subquery(name)
    )


@functools.cache
def _counts(by_email: bool, by_client: bool) -> tuple[FromClause, tuple[ColumnElement[Any], ...]]:
    # Built once per shape with bound parameters: a statement object caches its compiled
    # form, so a login pays for executing the query, not for building it.
    parts: list[Subquery] = []
    columns: list[ColumnElement[Any]] = []
    for present, matches, name in (
        (by_email, LoginFailure.email_key == bindparam("failures_email_key"), "by_email"),
        (by_client, LoginFailure.client_ip == bindparam("failures_client_ip"), "by_client"),
    ):
        if present:
            counted = _counted(matches, name)
            parts.append(counted)
            columns += [counted.c.n, counted.c.oldest]
        else:
            columns += [literal(0), null()]
    if not parts:
        return select(literal(1).label("one")).subquery("no_counts"), tuple(columns)
    source: FromClause = parts[0]
    for part in parts[1:]:
        source = source.join(part, true())
    return source, tuple(columns)


def recent_columns(
    query: RecentQuery,
) -> tuple[FromClause, tuple[ColumnElement[Any], ...], dict[str, Any]]:
    """A one-row FROM clause holding ``query``'s counts, its four columns in the order
    ``recent_of`` reads them, and the parameters to execute it with; for callers that
    fetch the counts with another row. The same query shape gives the same objects."""
    source, columns = _counts(query.email_key is not None, bool(query.client_ip))
    parameters: dict[str, Any] = {"failures_since": query.since}
    if query.email_key is not None:
        parameters["failures_email_key"] = query.email_key
    if query.client_ip:
        parameters["failures_client_ip"] = query.client_ip
    return source, columns, parameters


def recent_parameters(query: RecentQuery) -> dict[str, Any]:
    """The parameters of ``recent_columns``'s statement for ``query``."""
    return recent_columns(query)[2]


# Advisory lock classes (the first half of PostgreSQL's two-key form), one per kind of key.
_EMAIL_LOCKS = 0x57570001
_CLIENT_LOCKS = 0x57570002

# Whether this session holds the throttle's locks: set by the lock statement after it has
# them (and undone with it if it fails), checked by the transaction it protects.
_HELD = "watchword.throttle_locked"

_LOCK = select(
    func.pg_advisory_lock(literal(_EMAIL_LOCKS), bindparam("email_lock", type_=Integer)),
    func.pg_advisory_lock(literal(_CLIENT_LOCKS), bindparam("client_lock", type_=Integer)),
    func.set_config(literal(_HELD), literal("on"), false()),
)
_UNLOCK = select(
    func.pg_advisory_unlock(literal(_EMAIL_LOCKS), bindparam("email_lock", type_=Integer)),
    func.pg_advisory_unlock(literal(_CLIENT_LOCKS), bindparam("client_lock", type_=Integer)),
    func.set_config(literal(_HELD), literal("off"), false()),
)
# The first statement of the locked transaction: it fails (an invalid cast that says why)
# unless the locks are held, and lets the commit skip waiting for the disk.
_HELD_NOW = func.current_setting(literal(_HELD), true())
_LOCKED = select(
    case(
        (_HELD_NOW == literal("on"), func.set_config(literal("synchronous_commit"), "off", true())),
        # Not a constant (PostgreSQL would fold it, and fail, while planning).
        else_=cast(
            func.concat(literal("watchword: the throttle's locks are not held: "), _HELD_NOW),
            Integer,
        ).cast(Text),
    )
)


def lock_statement() -> Select[Any]:
    """PostgreSQL only: take the session locks on ``reserve_statement``'s address and client
    (a NULL key locks nothing), before the transaction that reads and reserves begins, so
    that its snapshot (under REPEATABLE READ or SERIALIZABLE taken at its first statement)
    sees what the last holder committed. Every request takes the address's lock before the
    client's, so two can never wait on each other. Parameters: ``lock_parameters``'s."""
    return _LOCK


def unlock_statement() -> Select[Any]:
    """PostgreSQL only: give back ``lock_statement``'s locks (same parameters)."""
    return _UNLOCK


def locked_statement() -> Select[Any]:
    """PostgreSQL only: the first statement of the transaction ``lock_statement`` protects;
    it fails unless the locks are held (the lock statement failed: nothing may be reserved).

    The transaction's commit does not wait for the disk: a reservation matters while its
    check runs, and a check that fails makes it durable (``confirm``) before it answers."""
    return _LOCKED


def _lock_key(value: bytes) -> int:
    # Locks by a digest's first four bytes: a rare collision makes two keys share a lock.
    return int.from_bytes(value[:4], "big", signed=True)


def lock_parameters(query: RecentQuery) -> dict[str, Any]:
    """The parameters of ``lock_statement`` for ``query``'s counts."""
    client = query.client_ip
    return {
        "email_lock": None if query.email_key is None else _lock_key(query.email_key),
        "client_lock": _lock_key(hashlib.sha256(client.encode()).digest()) if client else None,
    }


@functools.cache
def reserve_statement(by_email: bool, by_client: bool) -> Insert:
    """Insert the attempt's failure row unless a count has reached its limit; returns the
    new row's id (no row: refused). Parameters: ``reserve_parameters``'s."""
    source, (by_email_count, _, by_client_count, _) = _counts(by_email, by_client)
    email_limit = bindparam("email_limit", type_=Integer)
    client_limit = bindparam("client_limit", type_=Integer)
    under_limits = and_(
        or_(email_limit == 0, by_email_count < email_limit),
        or_(client_limit == 0, by_client_count < client_limit),
    )
    row = (
        select(
            bindparam("attempt_email_key", type_=LargeBinary),
            bindparam("attempt_client_ip", type_=String),
            bindparam("attempt_time", type_=UTCDateTime),
        )
        .select_from(source)
        .where(under_limits)
    )
    return (
        insert(LoginFailure)
        .from_select(["email_key", "client_ip", "create_time"], row)
        .returning(LoginFailure.id)
    )


def reserve_parameters(query: RecentQuery) -> dict[str, Any]:
    """The parameters of ``reserve_statement`` (and of the counts) for ``query``."""
    attempt = query.attempt
    if attempt is None:
        raise ValueError("the query names no attempt to reserve a place for")
    return {
        **recent_parameters(query),
        "attempt_email_key": attempt.email_key,
        "attempt_client_ip": attempt.client_ip,
        "attempt_time": attempt.now,
        "email_limit": attempt.email_limit,
        "client_limit": attempt.client_limit,
    }


def counts_statement(by_email: bool, by_client: bool) -> Select[Any]:
    """``recent``'s statement for one query shape (parameters: ``recent_parameters``)."""
    return _recent_statement(by_email, by_client)


async def reserve(conn: AsyncConnection, query: RecentQuery) -> tuple[Recent, int | None]:
    """The counts before the attempt, and its failure row's id (None: refused). The caller
    makes sure no other reservation for the same keys runs meanwhile (see the module doc)."""
    recent_now = await recent(conn, query)
    statement = reserve_statement(query.email_key is not None, bool(query.client_ip))
    reserved = await conn.scalar(statement, reserve_parameters(query))
    return recent_now, None if reserved is None else int(reserved)


async def confirm(conn: AsyncConnection, reserved: int, now: datetime) -> None:
    """Make a reserved place a failure, counted from ``now``; the caller's transaction must
    commit durably (it does: this is a write, so its commit waits for the disk, and with
    it for the reservation's own, earlier commit)."""
    await conn.execute(
        update(LoginFailure).where(LoginFailure.id == reserved).values(create_time=now)
    )


async def release(conn: AsyncConnection, reserved: int) -> None:
    """Give back a place taken by ``reserve``: that check was not a failure."""
    await conn.execute(delete(LoginFailure).where(LoginFailure.id == reserved))


def counts_of(by_email: bool, by_client: bool) -> tuple[FromClause, tuple[ColumnElement[Any], ...]]:
    """``recent_columns``'s FROM clause and columns for one query shape (counting failures
    by address, by client address, both or neither)."""
    return _counts(by_email, by_client)


def recent_of(values: Any) -> Recent:
    """The ``Recent`` from the four values of ``recent_columns``, in their order."""
    by_email, oldest_by_email, by_client, oldest_by_client = values
    return Recent(int(by_email), oldest_by_email, int(by_client), oldest_by_client)


@functools.cache
def _recent_statement(by_email: bool, by_client: bool) -> Select[Any]:
    source, columns = _counts(by_email, by_client)
    return select(*columns).select_from(source)


async def recent(conn: AsyncConnection, query: RecentQuery) -> Recent:
    """Failures since ``query.since`` for the address and for the client: one statement,
    one index scan each."""
    _, _, parameters = recent_columns(query)
    statement = _recent_statement(query.email_key is not None, bool(query.client_ip))
    row = (await conn.execute(statement, parameters)).one()
    return recent_of(tuple(row))


async def prune(
    conn: AsyncConnection, *, email_key: bytes, client_ip: str, since: datetime
) -> None:
    """Drop the failures of this address and client that no longer count (both through
    their indexes; nothing scans the table)."""
    await conn.execute(
        delete(LoginFailure).where(
            LoginFailure.email_key == email_key, LoginFailure.create_time <= since
        )
    )
    if client_ip:
        await conn.execute(
            delete(LoginFailure).where(
                LoginFailure.client_ip == client_ip, LoginFailure.create_time <= since
            )
        )


async def forget(conn: AsyncConnection, *, email_key: bytes) -> None:
    """Clear an address's failures after a correct password."""
    await conn.execute(delete(LoginFailure).where(LoginFailure.email_key == email_key))
