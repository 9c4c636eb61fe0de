"""Queries on login_failures: recent failed password checks by address and by client."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Subquery,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import FromClause

from watchword_server.storage.models import LoginFailure

__all__ = [
    "Recent",
    "RecentQuery",
    "counts_of",
    "forget",
    "record",
    "recent",
    "recent_columns",
    "recent_of",
    "recent_parameters",
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


async def record(
    conn: AsyncConnection, *, email_key: bytes, client_ip: str, now: datetime, since: datetime
) -> None:
    """Count a failure, and drop the failures of this address and client that no longer
    count (both through their indexes; nothing scans the table)."""
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
    await conn.execute(
        insert(LoginFailure).values(email_key=email_key, client_ip=client_ip, create_time=now)
    )


async def forget(conn: AsyncConnection, *, email_key: bytes) -> None:
    """Clear an address's failures after a correct password."""
    await conn.execute(delete(LoginFailure).where(LoginFailure.email_key == email_key))
