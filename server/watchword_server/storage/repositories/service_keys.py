"""Queries on service_keys: the keys calling services present, stored as digests."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import ServiceKey

__all__ = [
    "DuplicateKeyName",
    "ServiceKeyRow",
    "delete_by_name",
    "insert_key",
    "list_keys",
    "touch_many",
]


class DuplicateKeyName(Exception):
    """Another key already has this name."""


@dataclass(frozen=True)
class ServiceKeyRow:
    """A key without its digest."""

    id: uuid.UUID
    name: str
    scope: str
    create_time: datetime
    last_used_time: datetime | None
    client_subject: str | None = None


_COLUMNS = (
    ServiceKey.id,
    ServiceKey.name,
    ServiceKey.scope,
    ServiceKey.create_time,
    ServiceKey.last_used_time,
    ServiceKey.client_subject,
)


def _row(row: object) -> ServiceKeyRow:
    return ServiceKeyRow(
        id=row.id,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        scope=row.scope,  # type: ignore[attr-defined]
        create_time=row.create_time,  # type: ignore[attr-defined]
        last_used_time=row.last_used_time,  # type: ignore[attr-defined]
        client_subject=row.client_subject,  # type: ignore[attr-defined]
    )


async def insert_key(
    conn: AsyncConnection,
    *,
    name: str,
    scope: str,
    key_digest: bytes,
    now: datetime,
    client_subject: str | None = None,
) -> ServiceKeyRow:
    """Store a new key; raises DuplicateKeyName if the name is in use."""
    key_id = uuid.uuid4()
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(ServiceKey).values(
                    id=key_id,
                    name=name,
                    scope=scope,
                    key_digest=key_digest,
                    create_time=now,
                    client_subject=client_subject,
                )
            )
    except IntegrityError as error:
        raise DuplicateKeyName(name) from error
    return ServiceKeyRow(key_id, name, scope, now, None, client_subject)


async def touch_many(conn: AsyncConnection, used: Mapping[uuid.UUID, datetime]) -> None:
    """Record many keys' last use at once."""
    if not used:
        return
    statement = (
        update(ServiceKey)
        .where(ServiceKey.id == bindparam("b_id"))
        .values(last_used_time=bindparam("b_when"))
    )
    await conn.execute(statement, [{"b_id": key, "b_when": when} for key, when in used.items()])


async def list_keys(conn: AsyncConnection) -> list[ServiceKeyRow]:
    """Every key, by name."""
    result = await conn.execute(select(*_COLUMNS).order_by(ServiceKey.name))
    return [_row(row) for row in result]


async def delete_by_name(conn: AsyncConnection, name: str) -> uuid.UUID | None:
    """Revoke a key; returns its id, or None if there was no key of that name."""
    result = await conn.execute(
        delete(ServiceKey).where(ServiceKey.name == name).returning(ServiceKey.id)
    )
    return result.scalar_one_or_none()
