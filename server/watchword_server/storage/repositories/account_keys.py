"""Queries on account_keys: mailed single-use keys, stored only as digests."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import AccountKey

__all__ = ["consume", "insert_key", "live_owner", "void_unused"]


async def insert_key(
    conn: AsyncConnection,
    *,
    key_id: uuid.UUID,
    user_id: uuid.UUID,
    purpose: str,
    key_digest: bytes,
    now: datetime,
    expire_time: datetime,
) -> None:
    """Store a new key's digest."""
    await conn.execute(
        insert(AccountKey).values(
            id=key_id,
            user_id=user_id,
            purpose=purpose,
            key_digest=key_digest,
            create_time=now,
            expire_time=expire_time,
        )
    )


async def void_unused(conn: AsyncConnection, user_id: uuid.UUID, purpose: str) -> None:
    """Forget a user's outstanding keys of one purpose (a newer key voids older ones)."""
    await conn.execute(
        delete(AccountKey).where(
            AccountKey.user_id == user_id,
            AccountKey.purpose == purpose,
            AccountKey.used_time.is_(None),
        )
    )


async def consume(
    conn: AsyncConnection, key_digest: bytes, purpose: str, now: datetime
) -> uuid.UUID | None:
    """Use a key once: returns its user's id, or None if unknown, used or expired.

    One conditional UPDATE, so two concurrent uses of the same key cannot both succeed.
    """
    result = await conn.execute(
        update(AccountKey)
        .where(
            AccountKey.key_digest == key_digest,
            AccountKey.purpose == purpose,
            AccountKey.used_time.is_(None),
            AccountKey.expire_time > now,
        )
        .values(used_time=now)
        .returning(AccountKey.user_id)
    )
    return result.scalar_one_or_none()


async def live_owner(
    conn: AsyncConnection, key_digest: bytes, purpose: str, now: datetime
) -> uuid.UUID | None:
    """The user of a key that is unused and unexpired, if it is (a cheap look before
    expensive work; the key is checked again when consumed)."""
    found = await conn.scalar(
        select(AccountKey.user_id).where(
            AccountKey.key_digest == key_digest,
            AccountKey.purpose == purpose,
            AccountKey.used_time.is_(None),
            AccountKey.expire_time > now,
        )
    )
    return None if found is None else uuid.UUID(str(found))
