"""The login's own statements on a real PostgreSQL database: the one-statement read, and
the re-check whose transaction may commit without waiting for the disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from watchword_server.model.records import UserRecord, UserStatus
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.models import LoginFailure
from watchword_server.storage.repositories import login_failures as failure_rows
from watchword_server.storage.repositories import users as user_rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = b"k" * 32


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    engine = create_engine(database_url, pool_size=1)  # one connection: reuse is visible
    yield Database(engine)
    await engine.dispose()


async def add_user(database: Database, email: str) -> UserRecord:
    async with database.begin() as conn:
        return await user_rows.insert_user(
            conn,
            email=email,
            password_hash="hash-1",
            first_name="A",
            last_name="B",
            status=UserStatus.ACTIVE,
            email_verified=True,
            extra={},
            now=NOW,
        )


async def synchronous_commit(database: Database) -> str:
    async with database.begin() as conn:
        return str(await conn.scalar(text("SELECT current_setting('synchronous_commit')")))


async def test_one_statement_reads_the_account_and_its_failures(database: Database) -> None:
    user = await add_user(database, "Ada@Example.com")
    async with database.begin() as conn:
        for client, age in (("198.51.100.1", 10), ("198.51.100.1", 20), ("203.0.113.5", 30)):
            now = NOW - timedelta(seconds=age)
            await conn.execute(
                insert(LoginFailure).values(email_key=KEY, client_ip=client, create_time=now)
            )
    query = failure_rows.RecentQuery(
        email_key=KEY, client_ip="198.51.100.1", since=NOW - timedelta(seconds=25)
    )
    for email, expected in (("ada@example.COM", user.id), ("nobody@example.com", None)):
        async with database.connect() as conn:
            stored, recent = await user_rows.find_for_login(conn, email, query)
        assert (stored.record.id if stored else None) == expected
        assert stored is None or stored.password_hash == "hash-1"
        assert recent is not None
        assert (recent.by_email, recent.by_client) == (2, 2)
        assert recent.oldest_by_email == recent.oldest_by_client == NOW - timedelta(seconds=20)
    async with database.connect() as conn:
        stored, recent = await user_rows.find_for_login(conn, "ada@example.com", None)
    assert stored is not None and recent is None
    async with database.connect() as conn:
        only_client = failure_rows.RecentQuery(None, "203.0.113.5", NOW - timedelta(hours=1))
        counted = await failure_rows.recent(conn, only_client)
    assert (counted.by_email, counted.by_client) == (0, 1)
    # The read ran in autocommit; the connection it used is transactional again.
    with pytest.raises(ZeroDivisionError):
        async with database.begin() as conn:
            await conn.execute(text("CREATE TEMP TABLE rolled_back (x int)"))
            raise ZeroDivisionError
    async with database.connect() as conn:
        assert await conn.scalar(text("SELECT to_regclass('rolled_back') IS NULL"))


async def test_only_a_non_durable_recheck_skips_the_flush_and_only_for_its_transaction(
    database: Database,
) -> None:
    user = await add_user(database, "ada@example.com")
    for durable, expected in ((True, "on"), (False, "off")):
        async with database.begin() as conn:
            state = await user_rows.lock_login_state(conn, user.id, durable=durable)
            assert state == (UserStatus.ACTIVE, "hash-1")
            setting = await conn.scalar(text("SELECT current_setting('synchronous_commit')"))
            assert setting == expected
        assert await synchronous_commit(database) == "on"
