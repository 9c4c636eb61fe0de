"""Queries on login_failures: recent failed password checks by address and by client."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.storage.models import LoginFailure

__all__ = ["Recent", "forget", "record", "recent"]


class Recent:
    """How many failures a key and a client have had since a time, and the oldest of each."""

    __slots__ = ("by_client", "by_email", "oldest_by_client", "oldest_by_email")

    def __init__(
        self,
        by_email: int,
        oldest_by_email: datetime | None,
        by_client: int,
        oldest_by_client: datetime | None,
    ) -> None:
        self.by_email = by_email
        self.oldest_by_email = oldest_by_email
        self.by_client = by_client
        self.oldest_by_client = oldest_by_client


async def recent(
    conn: AsyncConnection, *, email_key: bytes, client_ip: str, since: datetime
) -> Recent:
    """Failures since ``since`` for the address and for the client, in two index scans."""
    by_email = await _count(conn, LoginFailure.email_key == email_key, since)
    by_client: tuple[int, datetime | None] = (0, None)
    if client_ip:
        by_client = await _count(conn, LoginFailure.client_ip == client_ip, since)
    return Recent(by_email[0], by_email[1], by_client[0], by_client[1])


async def _count(
    conn: AsyncConnection, matches: ColumnElement[bool], since: datetime
) -> tuple[int, datetime | None]:
    row = (
        await conn.execute(
            select(func.count(), func.min(LoginFailure.create_time)).where(
                matches, LoginFailure.create_time > since
            )
        )
    ).one()
    return int(row[0]), row[1]


async def record(
    conn: AsyncConnection, *, email_key: bytes, client_ip: str, now: datetime, since: datetime
) -> None:
    """Count a failure, and drop the failures of this address and client that no longer
    count (both through their indexes; nothing scans the table)."""
    await conn.execute(
        delete(LoginFailure).where(
            LoginFailure.email_key == email_key, LoginFailure.create_time <= since
        )
    )
    if client_ip:
        await conn.execute(
            delete(LoginFailure).where(
                LoginFailure.client_ip == client_ip, LoginFailure.create_time <= since
            )
        )
    await conn.execute(
        insert(LoginFailure).values(email_key=email_key, client_ip=client_ip, create_time=now)
    )


async def forget(conn: AsyncConnection, *, email_key: bytes) -> None:
    """Clear an address's failures after a correct password."""
    await conn.execute(delete(LoginFailure).where(LoginFailure.email_key == email_key))
