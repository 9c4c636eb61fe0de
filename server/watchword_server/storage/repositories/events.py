"""Queries on the events table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.domain.types import EventKind
from watchword_server.storage.models import Event

__all__ = ["insert_event"]


async def insert_event(
    conn: AsyncConnection,
    *,
    kind: EventKind,
    user_id: uuid.UUID | None,
    description: str,
    client_ip: str,
    origin: str,
    now: datetime,
) -> int:
    """Append an event and return its id."""
    result = await conn.execute(
        insert(Event)
        .values(
            kind=kind.value,
            user_id=user_id,
            description=description,
            client_ip=client_ip,
            origin=origin,
            create_time=now,
        )
        .returning(Event.id)
    )
    return int(result.scalar_one())
