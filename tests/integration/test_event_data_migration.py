"""Migration 0009 on a database with events: they gain an empty ``data`` and read back
through the events repository; new rows written without it get the same (PostgreSQL and
SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.postgres import postgres_database
from watchword_server.model.records import EventKind
from watchword_server.storage.db import create_engine
from watchword_server.storage.repositories import events as event_rows
from watchword_server.storage.schema import upgrade

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_INSERT = text(
    "INSERT INTO events (kind, user_id, description, client_ip, origin, create_time) "
    "VALUES (:kind, NULL, :description, '', 'cron', :now)"
)


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, postgres_server_url: str, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/w.db"
        return
    with postgres_database(server_url=postgres_server_url) as database:
        yield database


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    created = create_engine(url)
    await upgrade(created, "0008")  # the revision before the column
    yield created
    await created.dispose()


async def test_existing_and_new_rows_without_data_read_as_empty(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(_INSERT, {"kind": "application", "description": "before", "now": _NOW})
    await upgrade(engine)
    async with engine.begin() as conn:
        # As a server older than the column would write it, during a rolling upgrade.
        await conn.execute(_INSERT, {"kind": "login", "description": "after", "now": _NOW})
        written = await event_rows.insert_event(
            conn,
            kind=EventKind.APPLICATION,
            user_id=None,
            description="with data",
            client_ip="",
            origin="app",
            now=_NOW,
            data={"n": 1, "nested": {"list": [True, None]}},
        )
    async with engine.connect() as conn:
        rows = await event_rows.events_after(conn, after_id=0, kind=None, limit=10)
    assert [(row.description, row.kind, row.data) for row in rows] == [
        ("before", EventKind.APPLICATION, {}),
        ("after", EventKind.LOGIN, {}),
        ("with data", EventKind.APPLICATION, {"n": 1, "nested": {"list": [True, None]}}),
    ]
    assert rows[-1].id == written
