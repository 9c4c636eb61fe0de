"""Queries on the second factors' tables: TOTP factors, recovery codes, login challenges.

Codes and challenges arrive here already digested, TOTP secrets already sealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import RecoveryCode, SecondFactorChallenge, TotpFactor

__all__ = [
    "Challenge",
    "StoredTotp",
    "consume_challenge",
    "delete_challenges_for_user",
    "delete_totp",
    "find_challenge",
    "get_totp",
    "has_unused_recovery_code",
    "insert_challenge",
    "replace_recovery_codes",
    "unused_recovery_codes",
    "upsert_totp",
    "use_recovery_code",
    "use_totp_step",
]


@dataclass(frozen=True)
class StoredTotp:
    """A user's TOTP row."""

    sealed_secret: bytes
    key_id: str
    confirmed: bool
    last_used_step: int | None


@dataclass(frozen=True)
class Challenge:
    """A live login challenge."""

    id: uuid.UUID
    user_id: uuid.UUID
    credential_digest: bytes
    remember: bool


async def get_totp(
    conn: AsyncConnection, user_id: uuid.UUID, *, lock: bool = False
) -> StoredTotp | None:
    """The user's TOTP factor, confirmed or not; with ``lock``, its row stays locked."""
    statement = select(
        TotpFactor.sealed_secret,
        TotpFactor.key_id,
        TotpFactor.confirmed_time,
        TotpFactor.last_used_step,
    ).where(TotpFactor.user_id == user_id)
    if lock:
        statement = statement.with_for_update()
    row = (await conn.execute(statement)).one_or_none()
    if row is None:
        return None
    return StoredTotp(bytes(row[0]), str(row[1]), row[2] is not None, row[3])


async def upsert_totp(
    conn: AsyncConnection, user_id: uuid.UUID, *, sealed_secret: bytes, key_id: str, now: datetime
) -> None:
    """Store a new, unconfirmed secret for the user, replacing an unconfirmed one."""
    await conn.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id))
    await conn.execute(
        insert(TotpFactor).values(
            user_id=user_id,
            sealed_secret=sealed_secret,
            key_id=key_id,
            create_time=now,
            confirmed_time=None,
            last_used_step=None,
        )
    )


async def use_totp_step(
    conn: AsyncConnection,
    user_id: uuid.UUID,
    step: int,
    *,
    confirm_at: datetime | None = None,
    reseal: tuple[bytes, str] | None = None,
) -> bool:
    """Record ``step`` as the last accepted one, if it is later than the stored one (False:
    a concurrent use of the same code won). Optionally confirms the factor, and stores the
    secret sealed again under the current pepper."""
    values: dict[str, object] = {"last_used_step": step}
    if confirm_at is not None:
        values["confirmed_time"] = confirm_at
    if reseal is not None:
        values["sealed_secret"], values["key_id"] = reseal
    result = await conn.execute(
        update(TotpFactor)
        .where(
            TotpFactor.user_id == user_id,
            or_(TotpFactor.last_used_step.is_(None), TotpFactor.last_used_step < step),
        )
        .values(**values)
    )
    return bool(result.rowcount)


async def delete_totp(conn: AsyncConnection, user_id: uuid.UUID) -> bool:
    """Remove the user's TOTP factor and recovery codes; whether there was a factor."""
    result = await conn.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id))
    await conn.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    return bool(result.rowcount)


async def replace_recovery_codes(
    conn: AsyncConnection, user_id: uuid.UUID, digests: Sequence[bytes], now: datetime
) -> None:
    """Void every recovery code of the user and store these instead."""
    await conn.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    await conn.execute(
        insert(RecoveryCode),
        [
            {"id": uuid.uuid4(), "user_id": user_id, "code_digest": digest, "create_time": now}
            for digest in digests
        ],
    )


async def unused_recovery_codes(conn: AsyncConnection, user_id: uuid.UUID) -> int:
    """How many of the user's recovery codes are unused."""
    count = await conn.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_time.is_(None))
    )
    return int(count or 0)


async def has_unused_recovery_code(
    conn: AsyncConnection, user_id: uuid.UUID, digest: bytes
) -> bool:
    """Whether the user has an unused recovery code with ``digest``."""
    found = await conn.scalar(
        select(RecoveryCode.id).where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_digest == digest,
            RecoveryCode.used_time.is_(None),
        )
    )
    return found is not None


async def use_recovery_code(
    conn: AsyncConnection, user_id: uuid.UUID, digest: bytes, now: datetime
) -> bool:
    """Spend the user's unused code with ``digest``; False when there is none."""
    result = await conn.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_digest == digest,
            RecoveryCode.used_time.is_(None),
        )
        .values(used_time=now)
    )
    return bool(result.rowcount)


async def insert_challenge(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    challenge_digest: bytes,
    credential_digest: bytes,
    remember: bool,
    client_ip: str,
    now: datetime,
    expire_time: datetime,
) -> None:
    """Store a login challenge."""
    await conn.execute(
        insert(SecondFactorChallenge).values(
            id=uuid.uuid4(),
            user_id=user_id,
            challenge_digest=challenge_digest,
            credential_digest=credential_digest,
            remember=remember,
            client_ip=client_ip,
            create_time=now,
            expire_time=expire_time,
        )
    )


async def find_challenge(
    conn: AsyncConnection, challenge_digest: bytes, now: datetime
) -> Challenge | None:
    """The challenge with this digest, if it has not expired."""
    row = (
        await conn.execute(
            select(
                SecondFactorChallenge.id,
                SecondFactorChallenge.user_id,
                SecondFactorChallenge.credential_digest,
                SecondFactorChallenge.remember,
            ).where(
                SecondFactorChallenge.challenge_digest == challenge_digest,
                SecondFactorChallenge.expire_time > now,
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return Challenge(row[0], row[1], bytes(row[2]), bool(row[3]))


async def consume_challenge(conn: AsyncConnection, challenge_id: uuid.UUID) -> bool:
    """Delete a challenge: it works once. False when another call took it first."""
    result = await conn.execute(
        delete(SecondFactorChallenge).where(SecondFactorChallenge.id == challenge_id)
    )
    return bool(result.rowcount)


async def delete_challenges_for_user(conn: AsyncConnection, user_id: uuid.UUID) -> None:
    """Void the user's pending login challenges."""
    await conn.execute(
        delete(SecondFactorChallenge).where(SecondFactorChallenge.user_id == user_id)
    )
