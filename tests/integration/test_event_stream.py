"""Live events across server processes, on a real PostgreSQL database (and once on SQLite).

Each ``EventStream`` gets its own engine, as it would in its own server process; events are
written through a third engine, as by a third process. The streams poll only every
``NO_POLL`` seconds, so what arrives sooner came by LISTEN/NOTIFY (or a reconnection).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword_server.model.errors import ShuttingDown, StreamOverflowed
from watchword_server.model.records import EventKind, EventRecord
from watchword_server.runtime.event_stream import (
    APPLICATION_NAME,
    EventStream,
    Subscription,
)
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.repositories.events import (
    events_after,
    insert_event,
    last_event_id,
    list_events,
)
from watchword_server.storage.schema import upgrade

# Every wait on an event is bounded, so a broken stream fails the test instead of hanging.
WAIT = 10.0
# The promise to watchers: an event committed anywhere arrives within this many seconds.
LATENCY = 1.0
# Longer than any test: the safety-net poll never delivers anything here.
NO_POLL = 60.0


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines, one per stream, as in two server processes."""
    first, second = create_engine(database_url), create_engine(database_url)
    yield first, second
    await first.dispose()
    await second.dispose()


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A third process's engine, which only writes events."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def streams(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> AsyncIterator[tuple[EventStream, EventStream]]:
    """Two started streams, one on each engine."""
    first = EventStream(Database(engines[0]), poll_interval=NO_POLL)
    second = EventStream(Database(engines[1]), poll_interval=NO_POLL)
    await first.start()
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


async def add(conn: AsyncConnection, kind: EventKind = EventKind.LOGIN) -> int:
    """Insert an event in ``conn``'s transaction, as the domain's EventLog does."""
    return await insert_event(
        conn,
        kind=kind,
        user_id=None,
        description=f"{kind.value} at {time.monotonic()}",
        client_ip="127.0.0.1",
        origin="test",
        now=datetime.now(UTC),
    )


async def write(engine: AsyncEngine, kind: EventKind = EventKind.LOGIN) -> int:
    """Insert one event in its own committed transaction and return its id."""
    async with engine.begin() as conn:
        return await add(conn, kind)


async def write_unannounced(engine: AsyncEngine, origin: str = "import") -> int:
    """Insert an event without pg_notify, as a bulk import might: only a read finds it."""
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                "INSERT INTO events (kind, user_id, description, client_ip, origin, create_time)"
                " VALUES ('user_created', NULL, '', '', :origin, now()) RETURNING id"
            ),
            {"origin": origin},
        )
        return int(result.scalar_one())


async def receive(subscription: Subscription, count: int) -> list[EventRecord]:
    async with asyncio.timeout(WAIT):
        return [await anext(subscription) for _ in range(count)]


def ids(events: Sequence[EventRecord]) -> list[int]:
    return [event.id for event in events]


async def listener_pids(engine: AsyncEngine) -> dict[int, datetime]:
    """The LISTEN connections on this test's database, with the time each one started."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid, backend_start FROM pg_stat_activity"
                " WHERE application_name = :name AND datname = current_database()"
            ),
            {"name": APPLICATION_NAME},
        )
        return {row.pid: row.backend_start for row in rows}


async def test_both_processes_receive_every_commit_in_order_within_a_second(
    streams: tuple[EventStream, EventStream], writer: AsyncEngine
) -> None:
    first, second = streams
    async with first.subscribe() as on_first, second.subscribe() as on_second:
        started = time.monotonic()
        written = [await write(writer, kind) for kind in EventKind]
        got_first, got_second = await asyncio.gather(
            receive(on_first, len(written)), receive(on_second, len(written))
        )
        elapsed = time.monotonic() - started

    assert elapsed < LATENCY
    assert ids(got_first) == ids(got_second) == written
    assert [event.kind for event in got_first] == list(EventKind)
    assert got_first[0].origin == "test"
    assert got_first[0].client_ip == "127.0.0.1"
    assert got_first[0].create_time.tzinfo is not None


async def test_a_kind_filter_delivers_only_that_kind(
    streams: tuple[EventStream, EventStream], writer: AsyncEngine
) -> None:
    first, second = streams
    async with first.subscribe(EventKind.LOGIN) as logins, second.subscribe() as everything:
        kinds = [EventKind.LOGOUT, EventKind.LOGIN, EventKind.LOGIN_FAILED, EventKind.LOGIN]
        written = [await write(writer, kind) for kind in kinds]
        assert ids(await receive(everything, 4)) == written
        # Nothing may sit between the logins: the marker is the very next one.
        marker = await write(writer, EventKind.LOGIN)
        got = await receive(logins, 3)

    assert ids(got) == [written[1], written[3], marker]
    assert {event.kind for event in got} == {EventKind.LOGIN}


async def test_a_rolled_back_insert_is_never_delivered(
    streams: tuple[EventStream, EventStream], writer: AsyncEngine
) -> None:
    first, second = streams
    async with first.subscribe() as on_first, second.subscribe() as on_second:
        async with writer.connect() as conn:
            await conn.begin()
            rolled_back = await add(conn)
            await conn.rollback()
        committed = [await write(writer), await write(writer)]

        got = await asyncio.gather(receive(on_first, 2), receive(on_second, 2))

    assert rolled_back < committed[0]
    assert ids(got[0]) == ids(got[1]) == committed


async def test_an_event_that_commits_late_is_delivered_after_its_successors(
    streams: tuple[EventStream, EventStream], writer: AsyncEngine
) -> None:
    first, second = streams
    async with first.subscribe() as on_first, second.subscribe() as on_second:
        async with writer.connect() as slow:
            await slow.begin()
            late = await add(slow)
            early = await write(writer)
            assert ids(await receive(on_first, 1)) == ids(await receive(on_second, 1)) == [early]
            await slow.commit()

        got = await asyncio.gather(receive(on_first, 1), receive(on_second, 1))

    assert late < early
    assert ids(got[0]) == ids(got[1]) == [late]


async def test_events_committed_before_a_subscription_are_not_replayed(
    streams: tuple[EventStream, EventStream], writer: AsyncEngine
) -> None:
    first, second = streams
    async with first.subscribe() as earlier:
        before = await write(writer)
        # Committed, but no notification makes the streams read it: as if the subscription
        # came before the listener got to it.
        unread = await write_unannounced(writer)
        # One stream already reads for a subscriber, the other had none.
        async with first.subscribe() as joined, second.subscribe() as joined_idle:
            after = await write(writer)
            got = await asyncio.gather(
                receive(earlier, 3), receive(joined, 1), receive(joined_idle, 1)
            )

    assert ids(got[0]) == [before, unread, after]
    assert ids(got[1]) == ids(got[2]) == [after]


async def test_stop_ends_open_subscriptions_and_refuses_new_ones(
    streams: tuple[EventStream, EventStream], writer: AsyncEngine
) -> None:
    first, second = streams
    received: list[EventRecord] = []
    first_arrived = asyncio.Event()

    async def watch(subscription: Subscription) -> None:
        async with subscription:
            async for event in subscription:
                received.append(event)
                first_arrived.set()

    async with second.subscribe() as on_second:
        watcher = asyncio.create_task(watch(first.subscribe()))
        written = await write(writer)
        async with asyncio.timeout(WAIT):
            await first_arrived.wait()

        await first.stop()
        async with asyncio.timeout(WAIT):
            await watcher  # the loop ended on its own

        with pytest.raises(ShuttingDown):
            async with first.subscribe():
                pass
        # The other process's stream goes on.
        later = await write(writer)
        assert ids(await receive(on_second, 2)) == [written, later]

    assert ids(received) == [written]


async def test_a_subscriber_that_never_reads_overflows_alone(
    engines: tuple[AsyncEngine, AsyncEngine], writer: AsyncEngine
) -> None:
    stream = EventStream(Database(engines[0]), poll_interval=NO_POLL, queue_size=3)
    await stream.start()
    try:
        async with stream.subscribe() as idle, stream.subscribe() as reader:
            written = []
            for _ in range(6):
                written.append(await write(writer))
                assert ids(await receive(reader, 1)) == written[-1:]

            # What was queued before the overflow still comes, then the error.
            assert ids(await receive(idle, 3)) == written[:3]
            with pytest.raises(StreamOverflowed):
                await receive(idle, 1)
            with pytest.raises(StreamOverflowed):
                await receive(idle, 1)
    finally:
        await stream.stop()


async def test_the_listener_reconnects_and_delivers_what_was_written_meanwhile(
    streams: tuple[EventStream, EventStream],
    writer: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = streams
    caplog.set_level(logging.WARNING, logger="watchword_server.runtime.event_stream")
    async with first.subscribe() as on_first, second.subscribe() as on_second:
        old = await listener_pids(writer)
        assert len(old) == 2

        async with writer.connect() as conn:
            terminated = await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) pid"),
                {"pids": list(old)},
            )
            assert all(terminated.scalars())
        during = [await write(writer), await write(writer)]
        async with writer.connect() as conn:
            written_by = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()

        got = await asyncio.gather(receive(on_first, 2), receive(on_second, 2))
        assert ids(got[0]) == ids(got[1]) == during

        # Both listen again, on connections opened after those events had committed: no
        # notification announced them, the catch-up after reconnecting found them.
        new = await listener_pids(writer)
        assert len(new) == 2
        assert not set(new) & set(old)
        assert all(started > written_by for started in new.values())

        # And notifications work again.
        started = time.monotonic()
        after = await write(writer)
        got = await asyncio.gather(receive(on_first, 1), receive(on_second, 1))
        assert time.monotonic() - started < LATENCY
        assert ids(got[0]) == ids(got[1]) == [after]

    lost = [r for r in caplog.records if "lost the connection that listens" in r.getMessage()]
    assert len(lost) == 2


async def test_the_poll_finds_events_written_without_a_notification(
    engines: tuple[AsyncEngine, AsyncEngine], writer: AsyncEngine
) -> None:
    stream = EventStream(Database(engines[0]), poll_interval=0.2)
    await stream.start()
    try:
        async with stream.subscribe() as subscription:
            written = await write_unannounced(writer)
            got = await receive(subscription, 1)
    finally:
        await stream.stop()

    assert ids(got) == [written]
    assert got[0].kind is EventKind.USER_CREATED
    assert got[0].origin == "import"


async def test_sqlite_is_polled(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'watchword.db'}"
    engine, writer = create_engine(url), create_engine(url)
    try:
        await upgrade(engine)
        before = await write(writer)
        stream = EventStream(Database(engine))
        await stream.start()
        try:
            async with (
                stream.subscribe() as everything,
                stream.subscribe(EventKind.LOGOUT) as logouts,
            ):
                started = time.monotonic()
                written = [
                    await write(writer, EventKind.LOGIN),
                    await write(writer, EventKind.LOGOUT),
                ]
                got = await receive(everything, 2)
                assert time.monotonic() - started < LATENCY
                assert ids(await receive(logouts, 1)) == written[1:]
        finally:
            await stream.stop()
    finally:
        await engine.dispose()
        await writer.dispose()

    assert before < written[0]
    assert ids(got) == written


async def test_list_events_pages_by_user_and_kind(writer: AsyncEngine) -> None:
    ada, bob = uuid.uuid4(), uuid.uuid4()
    async with writer.begin() as conn:
        assert await last_event_id(conn) == 0
        written = []
        for user, kind in [
            (ada, EventKind.LOGIN),
            (bob, EventKind.LOGIN),
            (ada, EventKind.LOGOUT),
            (ada, EventKind.LOGIN),
            (None, EventKind.LOGIN_FAILED),
        ]:
            written.append(
                await insert_event(
                    conn,
                    kind=kind,
                    user_id=user,
                    description="",
                    client_ip="",
                    origin="test",
                    now=datetime.now(UTC),
                )
            )

    async with writer.connect() as conn:
        assert await last_event_id(conn) == written[-1]
        page = await list_events(conn, user_id=ada, kind=None, after_id=0, limit=2)
        assert ids(page) == [written[0], written[2]]
        page = await list_events(conn, user_id=ada, kind=None, after_id=page[-1].id, limit=2)
        assert ids(page) == [written[3]]
        page = await list_events(conn, user_id=None, kind=EventKind.LOGIN, after_id=0, limit=10)
        assert ids(page) == [written[0], written[1], written[3]]
        page = await list_events(conn, user_id=ada, kind=EventKind.LOGIN, after_id=0, limit=10)
        assert ids(page) == [written[0], written[3]]
        assert ids(await events_after(conn, after_id=written[1], kind=None, limit=2)) == [
            written[2],
            written[3],
        ]
        assert ids(await events_after(conn, after_id=0, kind=EventKind.LOGIN_FAILED, limit=10)) == [
            written[4]
        ]
