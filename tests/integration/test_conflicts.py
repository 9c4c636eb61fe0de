"""Transactions that lose to a concurrent one are run again, on a real PostgreSQL database:
``Database.transaction`` for the ORM side, the ``PreparedPool`` for the hot path, and the
throttle's session locks that must be held before its transaction's snapshot is taken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from watchword_server.storage.conflicts import ATTEMPTS
from watchword_server.storage.db import Connection, Database, DatabaseUnavailable, create_engine
from watchword_server.storage.logins import PG_STATEMENTS
from watchword_server.storage.pg_prepared import PgStatement, PreparedPool, conninfo_for
from watchword_server.storage.repositories import groups as group_rows
from watchword_server.storage.repositories import login_failures as failure_rows

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Fails with SQLSTATE ``code`` the first ``times`` calls (a sequence: not rolled back).
_FLAKY_FUNCTION = """
CREATE OR REPLACE FUNCTION watchword_test_flaky(code text, times int) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('watchword_test_calls') <= times THEN
        RAISE EXCEPTION 'conflict for the test' USING ERRCODE = code;
    END IF;
    RETURN 1;
END $$
"""
_FLAKY = PgStatement(
    "watchword_test_flaky", "SELECT watchword_test_flaky($1::text, $2::int)", ("code", "times"), {}
)
_BACKEND = PgStatement("watchword_test_backend", "SELECT pg_backend_pid()", (), {})
_HOLDERS = PgStatement(
    "watchword_test_holders",
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    (),
    {},
)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    engine = create_engine(database_url, pool_size=4)
    database = Database(engine)
    async with database.begin() as conn:
        await conn.execute(text("DROP SEQUENCE IF EXISTS watchword_test_calls"))
        await conn.execute(text("CREATE SEQUENCE watchword_test_calls"))
        await conn.execute(text(_FLAKY_FUNCTION))
    yield database
    await engine.dispose()


async def calls(database: Database) -> int:
    async with database.connect() as conn:
        return int(await conn.scalar(text("SELECT last_value FROM watchword_test_calls")) or 0)


async def groups_named(database: Database, prefix: str) -> int:
    async with database.connect() as conn:
        query = text("SELECT count(*) FROM groups WHERE name LIKE :p")
        return int(await conn.scalar(query, {"p": prefix + "%"}) or 0)


async def test_write_skew_under_serializable_is_retried_into_one_outcome(
    database: Database,
) -> None:
    # Two transactions each make a group only if none exists: the classic write skew.
    # SERIALIZABLE refuses one of them; run again, it sees the other's group and stops.
    read = [asyncio.Event(), asyncio.Event()]
    attempts = [0, 0]

    async def make_if_none(index: int) -> None:
        async def work(conn: Connection) -> None:
            attempts[index] += 1
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
            query = text("SELECT count(*) FROM groups WHERE name LIKE 'skew-%'")
            existing = await conn.scalar(query)
            if attempts[index] == 1:  # both read before either writes
                read[index].set()
                await read[1 - index].wait()
            if existing == 0:
                await group_rows.insert_group(
                    conn, name=f"skew-{index}", description="", extra={}, now=NOW
                )

        await database.transaction(work)

    await asyncio.wait_for(asyncio.gather(make_if_none(0), make_if_none(1)), 30)
    assert await groups_named(database, "skew-") == 1
    assert sorted(attempts) == [1, 2]


async def test_a_deadlock_is_retried_and_both_transactions_commit(database: Database) -> None:
    async with database.begin() as conn:
        for name in ("left", "right"):
            await group_rows.insert_group(conn, name=name, description="", extra={}, now=NOW)
    first_locked = [asyncio.Event(), asyncio.Event()]
    attempts = [0, 0]

    async def update_both(index: int, order: tuple[str, str]) -> None:
        async def work(conn: Connection) -> None:
            attempts[index] += 1
            for position, name in enumerate(order):
                await conn.execute(
                    text("UPDATE groups SET description = description || :d WHERE name = :n"),
                    {"d": str(index), "n": name},
                )
                if position == 0 and attempts[index] == 1:
                    first_locked[index].set()
                    await first_locked[1 - index].wait()

        await database.transaction(work)

    await asyncio.wait_for(
        asyncio.gather(update_both(0, ("left", "right")), update_both(1, ("right", "left"))), 30
    )
    assert sorted(attempts) == [1, 2]
    async with database.connect() as conn:
        rows = (await conn.execute(text("SELECT description FROM groups"))).scalars().all()
    assert sorted(sorted(row) for row in rows) == [["0", "1"], ["0", "1"]]


async def test_a_conflict_that_keeps_coming_is_unavailable_after_the_last_attempt(
    database: Database,
) -> None:
    async def work(conn: Connection) -> None:
        await group_rows.insert_group(conn, name="never", description="", extra={}, now=NOW)
        await conn.execute(text("SELECT watchword_test_flaky('40001', 1000)"))

    with pytest.raises(DatabaseUnavailable):
        await database.transaction(work)
    assert await calls(database) == ATTEMPTS
    assert await groups_named(database, "never") == 0


async def test_a_conflict_that_passes_commits_once_and_other_errors_are_not_retried(
    database: Database,
) -> None:
    async def work(conn: Connection) -> None:
        await group_rows.insert_group(conn, name="once", description="", extra={}, now=NOW)
        await conn.execute(text("SELECT watchword_test_flaky('40P01', 2)"))

    await database.transaction(work)
    assert await calls(database) == 3
    assert await groups_named(database, "once") == 1

    async def refuses(conn: Connection) -> None:
        await conn.execute(text("SELECT watchword_test_flaky('40001', 0)"))
        raise ValueError("not a conflict")

    with pytest.raises(ValueError, match="not a conflict"):
        await database.transaction(refuses)
    assert await calls(database) == 4  # one more call: no retry


async def test_prepared_requests_are_sent_again_after_a_conflict(database: Database) -> None:
    pool = PreparedPool(conninfo_for(database), (_FLAKY,), size=1)
    try:
        assert await pool.fetch_one(_FLAKY, {"code": "40001", "times": 2}) == (1,)
        assert await calls(database) == 3
        with pytest.raises(DatabaseUnavailable, match="40001"):
            await pool.transaction([(_FLAKY, {"code": "40001", "times": 1000})])
        assert await calls(database) == 3 + ATTEMPTS
    finally:
        await pool.close()


async def test_the_throttle_s_transaction_runs_only_between_its_locks(database: Database) -> None:
    by_name = {statement.name: statement for statement in PG_STATEMENTS}
    lock, unlock, locked = (
        by_name[f"watchword_login_{name}"] for name in ("lock", "unlock", "locked")
    )
    pool = PreparedPool(conninfo_for(database), (*PG_STATEMENTS, _HOLDERS), size=1)
    query = failure_rows.RecentQuery(email_key=b"k" * 32, client_ip="192.0.2.9", since=NOW)
    parameters = failure_rows.lock_parameters(query)
    try:
        # Held during the transaction (both keys), given back after it.
        _, holders = await pool.transaction(
            [(locked, {}), (_HOLDERS, {})], holding=((lock, parameters), (unlock, parameters))
        )
        assert holders == [(2,)]
        assert await pool.fetch_one(_HOLDERS, {}) == (0,)
        # Without its locks the transaction refuses to run (nothing may be reserved).
        with pytest.raises(RuntimeError, match="locks are not held"):
            await pool.transaction([(locked, {}), (_HOLDERS, {})])
    finally:
        await pool.close()


async def test_a_failed_unlock_leaves_no_lock_behind_and_a_conflict_keeps_the_connection(
    database: Database,
) -> None:
    by_name = {statement.name: statement for statement in PG_STATEMENTS}
    lock, unlock = by_name["watchword_login_lock"], by_name["watchword_login_unlock"]
    locked = by_name["watchword_login_locked"]
    pool = PreparedPool(
        conninfo_for(database), (*PG_STATEMENTS, _HOLDERS, _FLAKY, _BACKEND), size=1
    )
    query = failure_rows.RecentQuery(email_key=b"k" * 32, client_ip="192.0.2.9", since=NOW)
    parameters = failure_rows.lock_parameters(query)
    try:
        # The "unlock" here fails (a bug in it, say): the transaction's work stands, and
        # the locks do not outlive the call (its connection is closed).
        _, holders = await pool.transaction(
            [(locked, {}), (_HOLDERS, {})],
            holding=((lock, parameters), (_FLAKY, {"code": "22012", "times": 1})),
        )
        assert holders == [(2,)]
        assert await pool.fetch_one(_HOLDERS, {}) == (0,)
        # A conflict inside the transaction: the unlock ran, so the connection stays.
        backend = await pool.fetch_one(_BACKEND, {})
        with pytest.raises(DatabaseUnavailable, match="40001"):
            await pool.transaction(
                [(locked, {}), (_FLAKY, {"code": "40001", "times": 1000})],
                holding=((lock, parameters), (unlock, parameters)),
            )
        assert await pool.fetch_one(_BACKEND, {}) == backend
        assert await pool.fetch_one(_HOLDERS, {}) == (0,)
    finally:
        await pool.close()
