"""Queries on passkeys (WebAuthn credentials) and passkey_challenges (ceremonies under way,
their challenges stored only as digests)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.model.records import PasskeyRecord
from watchword_server.storage.models import Passkey, PasskeyChallenge

__all__ = [
    "count_passkeys",
    "delete_passkeys_of",
    "CredentialTaken",
    "OpenChallenge",
    "StoredPasskey",
    "credential_ids_of",
    "delete_passkey",
    "find_by_credential",
    "insert_challenge",
    "insert_passkey",
    "list_passkeys",
    "take_challenge",
    "use_passkey",
]

_PUBLIC_COLUMNS = (
    Passkey.id,
    Passkey.user_id,
    Passkey.name,
    Passkey.create_time,
    Passkey.last_used_time,
)


class CredentialTaken(Exception):
    """The unique index on the credential id refused the insert."""


@dataclass(frozen=True)
class StoredPasskey:
    """A passkey with what verifying an assertion needs."""

    record: PasskeyRecord
    credential_id: bytes
    public_key: bytes
    sign_count: int


@dataclass(frozen=True)
class OpenChallenge:
    """A ceremony's challenge as it was stored, taken (deleted) to be answered once."""

    user_id: uuid.UUID | None
    email: str
    expire_time: datetime


def _record(row: Any) -> PasskeyRecord:
    return PasskeyRecord(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        create_time=row.create_time,
        last_used_time=row.last_used_time,
    )


async def insert_challenge(
    conn: AsyncConnection,
    *,
    challenge_digest: bytes,
    purpose: str,
    user_id: uuid.UUID | None,
    email: str,
    now: datetime,
    expire_time: datetime,
) -> None:
    """Store a new ceremony's challenge digest."""
    await conn.execute(
        insert(PasskeyChallenge).values(
            id=uuid.uuid4(),
            challenge_digest=challenge_digest,
            purpose=purpose,
            user_id=user_id,
            email=email,
            create_time=now,
            expire_time=expire_time,
        )
    )


async def take_challenge(
    conn: AsyncConnection,
    challenge_digest: bytes,
    purpose: str,
    *,
    user_id: uuid.UUID | None = None,
) -> OpenChallenge | None:
    """Delete the challenge (of ``user_id``'s, when given) and return what it was stored
    with (None: unknown, someone else's, or taken already).

    One DELETE … RETURNING, so of two concurrent answers to one challenge only one gets
    it; the caller decides on its expiry (an expired one is gone all the same).
    """
    conditions = [
        PasskeyChallenge.challenge_digest == challenge_digest,
        PasskeyChallenge.purpose == purpose,
    ]
    if user_id is not None:
        conditions.append(PasskeyChallenge.user_id == user_id)
    result = await conn.execute(
        delete(PasskeyChallenge)
        .where(*conditions)
        .returning(PasskeyChallenge.user_id, PasskeyChallenge.email, PasskeyChallenge.expire_time)
    )
    row = result.one_or_none()
    if row is None:
        return None
    return OpenChallenge(user_id=row.user_id, email=row.email, expire_time=row.expire_time)


async def insert_passkey(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    name: str,
    now: datetime,
) -> PasskeyRecord:
    """Store a verified credential; raises CredentialTaken if its id is registered."""
    record = PasskeyRecord(
        id=uuid.uuid4(), user_id=user_id, name=name, create_time=now, last_used_time=None
    )
    try:
        # A savepoint keeps the caller's transaction usable after a duplicate.
        async with conn.begin_nested():
            await conn.execute(
                insert(Passkey).values(
                    id=record.id,
                    user_id=user_id,
                    credential_id=credential_id,
                    public_key=public_key,
                    sign_count=sign_count,
                    name=name,
                    create_time=now,
                    last_used_time=None,
                )
            )
    except IntegrityError as error:
        raise CredentialTaken() from error
    return record


async def list_passkeys(conn: AsyncConnection, user_id: uuid.UUID) -> list[PasskeyRecord]:
    """The user's passkeys, oldest first."""
    result = await conn.execute(
        select(*_PUBLIC_COLUMNS)
        .where(Passkey.user_id == user_id)
        .order_by(Passkey.create_time, Passkey.id)
    )
    return [_record(row) for row in result]


async def credential_ids_of(conn: AsyncConnection, user_id: uuid.UUID) -> list[bytes]:
    """The credential ids of the user's passkeys, oldest first."""
    result = await conn.execute(
        select(Passkey.credential_id)
        .where(Passkey.user_id == user_id)
        .order_by(Passkey.create_time, Passkey.id)
    )
    return [bytes(row[0]) for row in result]


async def find_by_credential(conn: AsyncConnection, credential_id: bytes) -> StoredPasskey | None:
    """The passkey with this credential id, with its key and counter."""
    result = await conn.execute(
        select(
            *_PUBLIC_COLUMNS, Passkey.credential_id, Passkey.public_key, Passkey.sign_count
        ).where(Passkey.credential_id == credential_id)
    )
    row = result.one_or_none()
    if row is None:
        return None
    return StoredPasskey(
        record=_record(row),
        credential_id=bytes(row.credential_id),
        public_key=bytes(row.public_key),
        sign_count=int(row.sign_count),
    )


async def use_passkey(
    conn: AsyncConnection,
    passkey_id: uuid.UUID,
    *,
    expected_count: int,
    new_count: int,
    now: datetime,
) -> bool:
    """Record a use: the new counter and time, only if the counter is still the one the
    assertion was checked against (of two concurrent uses of one counter value, one
    wins). Returns whether it was."""
    result = await conn.execute(
        update(Passkey)
        .where(Passkey.id == passkey_id, Passkey.sign_count == expected_count)
        .values(sign_count=new_count, last_used_time=now)
    )
    return bool(result.rowcount)


async def delete_passkey(
    conn: AsyncConnection, user_id: uuid.UUID, passkey_id: uuid.UUID
) -> PasskeyRecord | None:
    """Delete the user's passkey; returns it, or None if the user has no such passkey."""
    result = await conn.execute(
        delete(Passkey)
        .where(Passkey.id == passkey_id, Passkey.user_id == user_id)
        .returning(*_PUBLIC_COLUMNS)
    )
    row = result.one_or_none()
    return None if row is None else _record(row)


async def count_passkeys(conn: AsyncConnection, user_id: uuid.UUID) -> int:
    """How many passkeys the user has."""
    return int(
        await conn.scalar(
            select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)
        )
        or 0
    )


async def delete_passkeys_of(conn: AsyncConnection, user_id: uuid.UUID) -> int:
    """Delete every passkey of the user, and the user's ceremonies under way; how many
    passkeys went."""
    await conn.execute(delete(PasskeyChallenge).where(PasskeyChallenge.user_id == user_id))
    result = await conn.execute(delete(Passkey).where(Passkey.user_id == user_id))
    return int(result.rowcount)
