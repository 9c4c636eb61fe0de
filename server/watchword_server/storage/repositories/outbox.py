"""Queries on the mail_outbox table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import MailOutbox

__all__ = [
    "DeadMail",
    "OutboxState",
    "PendingMail",
    "claim_due",
    "dead_letters",
    "insert_mail",
    "mark_sent",
    "queue_state",
    "record_failure",
    "revive",
]

# Enough to tell what went wrong; an SMTP transcript or traceback could be much longer.
_MAX_ERROR_LENGTH = 1000


@dataclass(frozen=True)
class PendingMail:
    """An unsent outbox row, as the sender needs it."""

    id: int
    kind: str
    recipient: str
    context: dict[str, str]
    attempts: int
    lease_until: datetime
    """The claim's own mark on the row: settling it succeeds only while it is there."""


@dataclass(frozen=True)
class DeadMail:
    """A mail given up after too many failed attempts."""

    id: int
    kind: str
    recipient: str
    attempts: int
    last_error: str
    create_time: datetime
    dead_time: datetime


@dataclass(frozen=True)
class OutboxState:
    """How the outbox stands: mails waiting to be sent, the oldest one's creation, and
    mails given up."""

    waiting: int
    oldest: datetime | None
    dead: int


async def queue_state(conn: AsyncConnection) -> OutboxState:
    """The outbox's state, in one query (for metrics)."""
    unsent = and_(MailOutbox.sent_time.is_(None), MailOutbox.dead_time.is_(None))
    row = (
        await conn.execute(
            select(
                func.count().filter(unsent),
                func.min(MailOutbox.create_time).filter(unsent),
                func.count().filter(MailOutbox.dead_time.is_not(None)),
            )
        )
    ).one()
    return OutboxState(waiting=int(row[0] or 0), oldest=row[1], dead=int(row[2] or 0))


async def insert_mail(
    conn: AsyncConnection,
    *,
    kind: str,
    recipient: str,
    context: Mapping[str, str],
    now: datetime,
) -> int:
    """Add a mail that is due at once and return its id."""
    result = await conn.execute(
        insert(MailOutbox)
        .values(
            kind=kind,
            recipient=recipient,
            context=dict(context),
            attempts=0,
            last_error="",
            create_time=now,
            next_attempt_time=now,
            sent_time=None,
        )
        .returning(MailOutbox.id)
    )
    return int(result.scalar_one())


async def claim_due(
    conn: AsyncConnection, *, now: datetime, limit: int, lease_until: datetime
) -> list[PendingMail]:
    """Claim and return up to ``limit`` unsent rows that are due, oldest first: each is due
    again only at ``lease_until`` (unless marked before).

    On PostgreSQL rows that another transaction holds are skipped (``SKIP LOCKED``), so
    parallel claims do not queue behind each other; SQLite's single writer needs no locks.
    """
    query = (
        select(
            MailOutbox.id,
            MailOutbox.kind,
            MailOutbox.recipient,
            MailOutbox.context,
            MailOutbox.attempts,
        )
        .where(
            MailOutbox.sent_time.is_(None),
            MailOutbox.dead_time.is_(None),
            MailOutbox.next_attempt_time <= now,
        )
        .order_by(MailOutbox.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await conn.execute(query)).all()
    if rows:
        claimed = update(MailOutbox).where(MailOutbox.id.in_([row.id for row in rows]))
        await conn.execute(claimed.values(next_attempt_time=lease_until))
    return [
        PendingMail(
            id=row.id,
            kind=row.kind,
            recipient=row.recipient,
            context={str(key): str(value) for key, value in (row.context or {}).items()},
            attempts=row.attempts,
            lease_until=lease_until,
        )
        for row in rows
    ]


def _still_claimed(mail: PendingMail) -> ColumnElement[bool]:
    # A claim whose lease ran out may have been taken over (the row claimed again, or
    # settled by the new claimer): then its own outcome must not overwrite the other's.
    return and_(
        MailOutbox.id == mail.id,
        MailOutbox.sent_time.is_(None),
        MailOutbox.next_attempt_time == mail.lease_until,
    )


async def mark_sent(conn: AsyncConnection, mail: PendingMail, *, now: datetime) -> bool:
    """Record that the claimed mail was handed over, so it is never sent again; False if
    the claim had been taken over meanwhile (nothing is written)."""
    result = await conn.execute(
        update(MailOutbox).where(_still_claimed(mail)).values(sent_time=now)
    )
    return bool(result.rowcount)


async def record_failure(
    conn: AsyncConnection,
    mail: PendingMail,
    *,
    error: str,
    next_attempt_time: datetime,
    dead_time: datetime | None = None,
) -> bool:
    """Count a failed attempt of the claimed mail, keep its (truncated) error and set when
    to try again, or (``dead_time``) give the mail up; False if the claim had been taken
    over meanwhile (nothing is written)."""
    result = await conn.execute(
        update(MailOutbox)
        .where(_still_claimed(mail))
        .values(
            attempts=MailOutbox.attempts + 1,
            last_error=error[:_MAX_ERROR_LENGTH],
            next_attempt_time=next_attempt_time,
            dead_time=dead_time,
        )
    )
    return bool(result.rowcount)


async def dead_letters(conn: AsyncConnection) -> list[DeadMail]:
    """The mails given up, oldest first."""
    rows = await conn.execute(
        select(
            MailOutbox.id,
            MailOutbox.kind,
            MailOutbox.recipient,
            MailOutbox.attempts,
            MailOutbox.last_error,
            MailOutbox.create_time,
            MailOutbox.dead_time,
        )
        .where(MailOutbox.dead_time.is_not(None))
        .order_by(MailOutbox.id)
    )
    return [
        DeadMail(
            id=row.id,
            kind=row.kind,
            recipient=row.recipient,
            attempts=row.attempts,
            last_error=row.last_error,
            create_time=row.create_time,
            dead_time=row.dead_time or row.create_time,
        )
        for row in rows
    ]


async def revive(conn: AsyncConnection, mail_ids: list[int] | None, *, now: datetime) -> int:
    """Make given-up mails (those of ``mail_ids``, or all) due again with a fresh count of
    attempts; returns how many."""
    statement = (
        update(MailOutbox)
        .where(MailOutbox.dead_time.is_not(None))
        .values(dead_time=None, attempts=0, next_attempt_time=now)
    )
    if mail_ids is not None:
        statement = statement.where(MailOutbox.id.in_(mail_ids))
    result = await conn.execute(statement)
    return int(result.rowcount or 0)
