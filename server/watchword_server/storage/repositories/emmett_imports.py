"""Reads and writes of ``watchword import-emmett``: the links it remembers and the rows it
adds, with the source's own times and ids chosen by the import."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.model.email_addresses import email_key, stored_email
from watchword_server.storage.models import (
    EmmettImport,
    Event,
    Group,
    Membership,
    Permission,
    User,
)

__all__ = [
    "Link",
    "RowTaken",
    "add_links",
    "alive_groups",
    "alive_users",
    "groups_named",
    "insert_events",
    "insert_groups",
    "insert_memberships",
    "insert_permissions",
    "insert_users",
    "links_of",
    "memberships_of",
    "permissions_of",
    "users_with_keys",
]

T = TypeVar("T")
# Rows per statement: well under SQLite's 32,766 bound parameters for every table here.
_CHUNK = 500


class RowTaken(Exception):
    """A row the import planned was taken meanwhile (an address registered, a group made,
    another import of the same source): the transaction is rolled back, nothing written."""


@dataclass(frozen=True)
class Link:
    """An Emmett row (``kind``, its id) and the Watchword row it became."""

    kind: str
    source_id: str
    target_id: str


async def _insert(conn: AsyncConnection, statement: Any, rows: list[dict[str, Any]]) -> Any:
    try:
        return await conn.execute(statement, rows)
    except IntegrityError as error:
        reason = (str(error.orig).strip().splitlines() or ["a unique key"])[0]
        raise RowTaken(f"a row the import meant to add exists now ({reason})") from error


def _chunks(items: Sequence[T]) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


async def links_of(conn: AsyncConnection, source: str) -> dict[tuple[str, str], str]:
    """Every link of ``source``: (kind, source id) to target id."""
    result = await conn.execute(
        select(EmmettImport.kind, EmmettImport.source_id, EmmettImport.target_id).where(
            EmmettImport.source == source
        )
    )
    return {(row.kind, row.source_id): row.target_id for row in result}


async def add_links(
    conn: AsyncConnection, source: str, links: Sequence[Link], now: datetime
) -> None:
    """Remember ``links`` (a source row linked twice is an error: the primary key)."""
    for chunk in _chunks(links):
        await _insert(
            conn,
            insert(EmmettImport),
            [
                {
                    "source": source,
                    "kind": link.kind,
                    "source_id": link.source_id,
                    "target_id": link.target_id,
                    "create_time": now,
                }
                for link in chunk
            ],
        )


async def users_with_keys(conn: AsyncConnection, keys: Collection[str]) -> dict[str, uuid.UUID]:
    """The accounts whose address key is among ``keys``: key to user id."""
    found: dict[str, uuid.UUID] = {}
    for chunk in _chunks(sorted(keys)):
        result = await conn.execute(
            select(User.email_key, User.id).where(User.email_key.in_(chunk))
        )
        found.update({row.email_key: row.id for row in result})
    return found


async def alive_users(conn: AsyncConnection, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` that are still users (an imported user may have been deleted)."""
    alive: set[uuid.UUID] = set()
    for chunk in _chunks(sorted(ids)):
        alive.update(await conn.scalars(select(User.id).where(User.id.in_(chunk))))
    return alive


async def alive_groups(conn: AsyncConnection, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` that are still groups."""
    alive: set[uuid.UUID] = set()
    for chunk in _chunks(sorted(ids)):
        alive.update(await conn.scalars(select(Group.id).where(Group.id.in_(chunk))))
    return alive


async def groups_named(conn: AsyncConnection, names: Collection[str]) -> dict[str, uuid.UUID]:
    """The groups among ``names`` that exist: name to id."""
    found: dict[str, uuid.UUID] = {}
    for chunk in _chunks(sorted(names)):
        result = await conn.execute(select(Group.name, Group.id).where(Group.name.in_(chunk)))
        found.update({row.name: row.id for row in result})
    return found


async def memberships_of(
    conn: AsyncConnection, group_ids: Collection[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """The memberships of these groups: (group id, user id) to membership id."""
    found: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = {}
    for chunk in _chunks(sorted(group_ids)):
        result = await conn.execute(
            select(Membership.id, Membership.group_id, Membership.user_id).where(
                Membership.group_id.in_(chunk)
            )
        )
        found.update({(row.group_id, row.user_id): row.id for row in result})
    return found


async def permissions_of(
    conn: AsyncConnection, group_ids: Collection[uuid.UUID]
) -> dict[tuple[uuid.UUID, str, str, str], uuid.UUID]:
    """The grants of these groups: (group id, name, table, record) to permission id."""
    found: dict[tuple[uuid.UUID, str, str, str], uuid.UUID] = {}
    for chunk in _chunks(sorted(group_ids)):
        result = await conn.execute(
            select(
                Permission.id,
                Permission.group_id,
                Permission.name,
                Permission.table_name,
                Permission.record_id,
            ).where(Permission.group_id.in_(chunk))
        )
        found.update(
            {(row.group_id, row.name, row.table_name, row.record_id): row.id for row in result}
        )
    return found


async def insert_users(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add users: each dict has the ``users`` columns but ``email_key`` (derived here)."""
    for chunk in _chunks(rows):
        await _insert(
            conn,
            insert(User),
            [
                {
                    **row,
                    "email": stored_email(row["email"]),
                    "email_key": email_key(row["email"]),
                }
                for row in chunk
            ],
        )


async def insert_groups(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add groups (dicts of ``groups`` columns)."""
    for chunk in _chunks(rows):
        await _insert(conn, insert(Group), list(chunk))


async def insert_memberships(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add memberships (dicts of ``memberships`` columns)."""
    for chunk in _chunks(rows):
        await _insert(conn, insert(Membership), list(chunk))


async def insert_permissions(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Add grants (dicts of ``permissions`` columns)."""
    for chunk in _chunks(rows):
        await _insert(conn, insert(Permission), list(chunk))


async def insert_events(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Add events (dicts of ``events`` columns but ``id``); their new ids, in order.

    Unlike ``events.insert_event`` nothing is announced to watchers: these are history,
    and an app reacting to a "registration" event must not greet every imported user.
    """
    ids: list[int] = []
    statement = insert(Event).returning(Event.id, sort_by_parameter_order=True)
    for chunk in _chunks(rows):
        result = await _insert(conn, statement, list(chunk))
        ids.extend(int(value) for value in result.scalars())
    return ids
