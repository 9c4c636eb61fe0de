"""Queries on the events table, and the PostgreSQL notification that announces each insert."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Select, Text, cast, func, insert, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.model.records import EventKind, EventRecord
from watchword_server.storage.models import Event

__all__ = [
    "NOTIFY_CHANNEL",
    "events_after",
    "events_with_ids",
    "insert_event",
    "last_event_id",
    "list_events",
    "missing_ids",
]

NOTIFY_CHANNEL = "watchword_events"
"""The PostgreSQL channel on which ``insert_event`` announces each new event's id."""

# Rows of a kind this version does not know (written by a newer server during a rolling
# upgrade) are left out in SQL: turning them into EventRecords would fail, and a stream
# stuck on one row would stop for good. Filtering in the query keeps `limit` exact.
_KNOWN_KINDS = tuple(kind.value for kind in EventKind)

_EventSelect: TypeAlias = (
    "Select[int, uuid.UUID | None, str, str, str, str, datetime, dict[str, Any]]"  # below
)

_COLUMNS = (
    Event.id,
    Event.user_id,
    Event.kind,
    Event.description,
    Event.client_ip,
    Event.origin,
    Event.create_time,
    Event.data,
)


# Built once: a statement object caches its compiled form, so a login's event costs an
# execution, not a construction and a compilation (~0.5 ms of CPU each on these machines).
_INSERT = insert(Event)
# Same as a separate `SELECT pg_notify(...)` in this transaction, one round trip less.
_INSERT_AND_NOTIFY = _INSERT.returning(
    Event.id, func.pg_notify(literal(NOTIFY_CHANNEL), cast(Event.id, Text))
)
_INSERT_RETURNING_ID = _INSERT.returning(Event.id)


async def insert_event(
    conn: AsyncConnection,
    *,
    kind: EventKind,
    user_id: uuid.UUID | None,
    description: str,
    client_ip: str,
    origin: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> int:
    """Append an event and return its id.

    On PostgreSQL the id is also sent on ``NOTIFY_CHANNEL``. PostgreSQL delivers it only
    when the caller's transaction commits (and never if it rolls back), so a listener is
    never told about an event it cannot read yet.
    """
    values = {
        "kind": kind.value,
        "user_id": user_id,
        "description": description,
        "client_ip": client_ip,
        "origin": origin,
        "create_time": now,
        "data": data or {},
    }
    postgresql = conn.dialect.name == "postgresql"
    statement = _INSERT_AND_NOTIFY if postgresql else _INSERT_RETURNING_ID
    result = await conn.execute(statement, values)
    return int(result.scalar_one())


async def events_after(
    conn: AsyncConnection, *, after_id: int, kind: EventKind | None, limit: int
) -> list[EventRecord]:
    """Up to ``limit`` events with an id above ``after_id`` (of ``kind`` if given), oldest first."""
    query = _select(kind).where(Event.id > after_id).order_by(Event.id).limit(limit)
    return [_to_record(row) for row in await conn.execute(query)]


async def events_with_ids(conn: AsyncConnection, ids: Collection[int]) -> list[EventRecord]:
    """The events among ``ids`` that exist (committed, as this transaction sees), oldest first."""
    if not ids:
        return []
    query = _select(None).where(Event.id.in_(sorted(ids))).order_by(Event.id)
    return [_to_record(row) for row in await conn.execute(query)]


async def list_events(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID | None,
    kind: EventKind | None,
    after_id: int,
    limit: int,
    also_ids: Collection[int] = (),
) -> list[EventRecord]:
    """One page of events, oldest first: those with an id above ``after_id``, and those
    of ``also_ids`` (ids an earlier page passed while they were not committed yet).

    A filter on ``user_id`` is served by ``ix_events_user_id_id``, one on ``kind`` alone by
    ``ix_events_kind_id``; both lead with the filtered column and end in ``id``, so the page
    is an index range scan that is already in order.
    """
    position = Event.id > after_id
    if also_ids:
        position = or_(position, Event.id.in_(list(also_ids)))
    query = _select(kind).where(position)
    if user_id is not None:
        query = query.where(Event.user_id == user_id)
    query = query.order_by(Event.id).limit(limit)
    return [_to_record(row) for row in await conn.execute(query)]


async def missing_ids(conn: AsyncConnection, *, above: int, through: int) -> list[int]:
    """The ids in ``(above, through]`` that no committed event has (as this transaction
    sees): rolled back, or drawn by a transaction that has not committed yet. One range
    scan of the primary key."""
    if through <= above:
        return []
    present = {
        row[0]
        for row in await conn.execute(select(Event.id).where(Event.id > above, Event.id <= through))
    }
    return [event_id for event_id in range(above + 1, through + 1) if event_id not in present]


async def last_event_id(conn: AsyncConnection) -> int:
    """The highest event id in the table, or 0 when it is empty."""
    result = await conn.execute(select(func.coalesce(func.max(Event.id), 0)))
    return int(result.scalar_one())


def _select(kind: EventKind | None) -> _EventSelect:
    query = select(*_COLUMNS)
    if kind is not None:
        return query.where(Event.kind == kind.value)
    return query.where(Event.kind.in_(_KNOWN_KINDS))


def _to_record(row: Any) -> EventRecord:
    return EventRecord(
        id=int(row.id),
        user_id=row.user_id,
        kind=EventKind(row.kind),
        description=row.description,
        client_ip=row.client_ip,
        origin=row.origin,
        create_time=row.create_time,
        # A JSON column's NULL (never written by us) reads as no data.
        data=row.data or {},
    )
