"""The PreparedPool's requests on a real PostgreSQL database: several statements sent as
one run in one transaction, all or nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from psycopg.conninfo import make_conninfo
from sqlalchemy import func, select, text

from watchword_server.storage.db import Database, DatabaseUnavailable, create_engine
from watchword_server.storage.models import LoginFailure
from watchword_server.storage.pg_prepared import PgStatement, PreparedPool, conninfo_for

_INSERT = PgStatement(
    "watchword_test_insert",
    "INSERT INTO login_failures (email_key, client_ip, create_time) "
    "VALUES ($1::bytea, $2::text, now()) RETURNING id",
    ("key", "client"),
    {},
)
_COUNT = PgStatement(
    "watchword_test_count",
    "SELECT count(*) FROM login_failures WHERE client_ip = $1::text",
    ("client",),
    {},
)
_SLOW_ECHO = PgStatement(
    "watchword_test_slow_echo", "SELECT $1::int FROM pg_sleep(0.3)", ("value",), {}
)
_ECHO = PgStatement("watchword_test_echo", "SELECT $1::int", ("value",), {})
_BACKEND = PgStatement("watchword_test_backend", "SELECT pg_backend_pid()", (), {})
_DIVIDE = PgStatement("watchword_test_divide", "SELECT 1 / $1::int", ("by",), {})
# A statement that fails as a serialization failure or a deadlock does (SQLSTATE $1).
_CONFLICT = PgStatement(
    "watchword_test_conflict", "SELECT watchword_test_fail($1::text)", ("code",), {}
)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    engine = create_engine(database_url, pool_size=1)
    yield Database(engine)
    await engine.dispose()


@pytest.fixture
async def pool(database: Database) -> AsyncIterator[PreparedPool]:
    async with database.begin() as conn:
        await conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION watchword_test_fail(code text) RETURNS int "
                "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = code; "
                "END $$"
            )
        )
    statements = (_INSERT, _COUNT, _DIVIDE, _CONFLICT, _SLOW_ECHO, _ECHO, _BACKEND)
    prepared = PreparedPool(conninfo_for(database), statements, size=1)
    yield prepared
    await prepared.close()


async def _stored(database: Database, client: str) -> int:
    async with database.connect() as conn:
        counted = await conn.scalar(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.client_ip == client)
        )
    return int(counted or 0)


async def test_statements_of_one_request_see_each_other_and_commit_together(
    pool: PreparedPool, database: Database
) -> None:
    values = {"key": b"k" * 32, "client": "192.0.2.1"}
    inserted, counted = await pool.transaction([(_INSERT, values), (_COUNT, values)])
    assert len(inserted) == 1 and counted == [(1,)]
    assert await _stored(database, "192.0.2.1") == 1


async def test_a_failing_statement_undoes_the_whole_request_and_the_pool_goes_on(
    pool: PreparedPool, database: Database
) -> None:
    values = {"key": b"k" * 32, "client": "192.0.2.2"}
    with pytest.raises(RuntimeError, match="division by zero"):
        await pool.transaction([(_INSERT, values), (_DIVIDE, {"by": 0}), (_COUNT, values)])
    assert await _stored(database, "192.0.2.2") == 0
    # The same connection serves the next request, in step with its answers.
    assert await pool.fetch_one(_DIVIDE, {"by": 1}) == (1,)
    (_, counted) = await pool.transaction([(_INSERT, values), (_COUNT, values)])
    assert counted == [(1,)]


@pytest.mark.parametrize("code", ["40001", "40P01", "55P03", "57014"])
async def test_a_failure_a_retry_may_cure_is_the_database_s_not_a_bug(
    pool: PreparedPool, database: Database, code: str
) -> None:
    # Serialization failures, deadlocks and timeouts answer UNAVAILABLE (with a retry
    # delay) through the RPC wrapping, never INTERNAL.
    values = {"key": b"k" * 32, "client": "192.0.2.3"}
    with pytest.raises(DatabaseUnavailable, match=code):
        await pool.transaction([(_INSERT, values), (_CONFLICT, {"code": code})])
    with pytest.raises(DatabaseUnavailable, match=code):
        await pool.fetch_one(_CONFLICT, {"code": code})
    assert await _stored(database, "192.0.2.3") == 0
    with pytest.raises(RuntimeError, match="22012"):  # a bug of ours stays one
        await pool.fetch_one(_CONFLICT, {"code": "22012"})


async def test_a_caller_that_stops_waiting_leaves_the_connection_in_step(
    pool: PreparedPool,
) -> None:
    # A client's deadline cancels checks in flight; that must not cost a new connection
    # (and its statements prepared again) each time, nor hand its answer to the next call.
    (backend,) = await pool.fetch_one(_BACKEND, {}) or (None,)
    slow = asyncio.ensure_future(pool.fetch_one(_SLOW_ECHO, {"value": 1}))
    await asyncio.sleep(0.05)  # sent, not answered
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    # Sent behind the abandoned request on the pool's one connection: its own answer.
    assert await pool.fetch_one(_ECHO, {"value": 2}) == (2,)
    assert await pool.fetch_one(_BACKEND, {}) == (backend,)


_INSTANT = PgStatement(
    "watchword_test_instant",
    "SELECT '2026-06-01 12:00:00+00'::timestamptz, current_setting('TimeZone')",
    (),
    {},
)


async def test_timestamps_come_back_in_utc_whatever_the_server_s_time_zone(
    database: Database,
) -> None:
    # A server whose default zone is not UTC, as a libpq option would set it.
    conninfo = make_conninfo(conninfo_for(database), options="-c TimeZone=Europe/Paris")
    prepared = PreparedPool(conninfo, [_INSTANT], size=1)
    try:
        [(instant, zone)] = await prepared.fetch(_INSTANT.name, ())
    finally:
        await prepared.close()
    assert zone == "UTC"
    assert instant.tzinfo is UTC  # no zoneinfo conversion per value read
    assert instant == datetime(2026, 6, 1, 12, tzinfo=UTC)
