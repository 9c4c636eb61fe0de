"""Queries on service_keys: the keys calling services present, stored as digests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import ServiceKey

__all__ = [
    "KeyNameTaken",
    "ServiceKeyRow",
    "delete_by_name",
    "find_by_digest",
    "insert_key",
    "list_keys",
    "touch",
]


class KeyNameTaken(Exception):
    """Another key already has this name."""


@dataclass(frozen=True)
class ServiceKeyRow:
    """A key without its digest."""

    id: uuid.UUID
    name: str
    scope: str
    create_time: datetime
    last_used_time: datetime | None


_COLUMNS = (
    ServiceKey.id,
    ServiceKey.name,
    ServiceKey.scope,
    ServiceKey.create_time,
    ServiceKey.last_used_time,
)


def _row(row: object) -> ServiceKeyRow:
    return ServiceKeyRow(
        id=row.id,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        scope=row.scope,  # type: ignore[attr-defined]
        create_time=row.create_time,  # type: ignore[attr-defined]
        last_used_time=row.last_used_time,  # type: ignore[attr-defined]
    )


async def insert_key(
    conn: AsyncConnection, *, name: str, scope: str, key_digest: bytes, now: datetime
) -> ServiceKeyRow:
    """Store a new key; raises KeyNameTaken if the name is in use."""
    key_id = uuid.uuid4()
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(ServiceKey).values(
                    id=key_id, name=name, scope=scope, key_digest=key_digest, create_time=now
                )
            )
    except IntegrityError as error:
        raise KeyNameTaken(name) from error
    return ServiceKeyRow(key_id, name, scope, now, None)


async def find_by_digest(conn: AsyncConnection, key_digest: bytes) -> ServiceKeyRow | None:
    """The key with this digest, if any."""
    result = await conn.execute(select(*_COLUMNS).where(ServiceKey.key_digest == key_digest))
    row = result.one_or_none()
    return None if row is None else _row(row)


async def touch(conn: AsyncConnection, key_id: uuid.UUID, now: datetime) -> None:
    """Record that a key was used at ``now``."""
    await conn.execute(update(ServiceKey).where(ServiceKey.id == key_id).values(last_used_time=now))


async def list_keys(conn: AsyncConnection) -> list[ServiceKeyRow]:
    """Every key, by name."""
    result = await conn.execute(select(*_COLUMNS).order_by(ServiceKey.name))
    return [_row(row) for row in result]


async def delete_by_name(conn: AsyncConnection, name: str) -> bool:
    """Revoke a key; returns whether it existed."""
    result = await conn.execute(delete(ServiceKey).where(ServiceKey.name == name))
    return result.rowcount == 1
