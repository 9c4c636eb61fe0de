"""Deletes of what is no longer needed: expired sessions, used or expired mailed keys,
mail sent (or given up) long ago, login failures that no longer count, second-factor
login challenges past their expiry, passkey challenges no longer answerable.

Each delete goes in batches of ``BATCH`` rows, each its own statement, so a purge never
holds many row locks or one long transaction; the same statements work on PostgreSQL and
SQLite.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword_server.storage.conflicts import retrying
from watchword_server.storage.models import (
    AccountKey,
    LoginFailure,
    MailOutbox,
    PasskeyChallenge,
    SecondFactorChallenge,
    Session,
)

__all__ = [
    "BATCH",
    "purge_challenges",
    "purge_dead_mail",
    "purge_failures",
    "purge_keys",
    "purge_passkey_challenges",
    "purge_sent_mail",
    "purge_sessions",
]

BATCH = 1000


async def _purge(engine: AsyncEngine, table: Any, where: ColumnElement[bool]) -> int:
    chosen = select(table.id).where(where).limit(BATCH).scalar_subquery()

    async def batch() -> int:
        async with engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.id.in_(chosen)))
        return int(result.rowcount or 0)

    removed = 0
    while True:
        count = await retrying(batch)
        removed += count
        if count < BATCH:
            return removed


async def purge_sessions(engine: AsyncEngine, now: datetime) -> int:
    """Sessions whose inactivity window has closed (one lifetime at a time: few differ)."""
    async with engine.connect() as conn:
        lifetimes = [row[0] for row in await conn.execute(select(Session.lifetime).distinct())]
    removed = 0
    for lifetime in lifetimes:
        expired = and_(
            Session.lifetime == lifetime,
            Session.last_seen_time < now - timedelta(seconds=lifetime),
        )
        removed += await _purge(engine, Session, expired)
    return removed


async def purge_keys(engine: AsyncEngine, before: datetime) -> int:
    """Mailed keys used, or expired, before ``before``."""
    done = or_(AccountKey.used_time < before, AccountKey.expire_time < before)
    return await _purge(engine, AccountKey, done)


async def purge_sent_mail(engine: AsyncEngine, before: datetime) -> int:
    """Outbox rows sent before ``before``."""
    return await _purge(engine, MailOutbox, MailOutbox.sent_time < before)


async def purge_dead_mail(engine: AsyncEngine, before: datetime) -> int:
    """Outbox rows given up before ``before``."""
    return await _purge(engine, MailOutbox, MailOutbox.dead_time < before)


async def purge_failures(engine: AsyncEngine, before: datetime) -> int:
    """Login failures from before ``before`` (they no longer count)."""
    return await _purge(engine, LoginFailure, LoginFailure.create_time < before)


async def purge_challenges(engine: AsyncEngine, now: datetime) -> int:
    """Second-factor login challenges that expired (they can no longer be completed)."""
    return await _purge(engine, SecondFactorChallenge, SecondFactorChallenge.expire_time <= now)


async def purge_passkey_challenges(engine: AsyncEngine, now: datetime) -> int:
    """Passkey ceremonies never answered whose challenge has expired."""
    return await _purge(engine, PasskeyChallenge, PasskeyChallenge.expire_time < now)
