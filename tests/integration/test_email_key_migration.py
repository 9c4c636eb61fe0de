"""Migration 0003 on a database with accounts: every address gets its key, and addresses
that become one refuse the upgrade by name, changing nothing (PostgreSQL and SQLite)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.postgres import postgres_database
from watchword_server.storage.db import create_engine
from watchword_server.storage.schema import MigrationRefused, upgrade

_NOW = datetime(2026, 1, 1, tzinfo=UTC)


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
    await upgrade(created, "0002")
    yield created
    await created.dispose()


async def _add(engine: AsyncEngine, *emails: str) -> None:
    async with engine.begin() as conn:
        for seconds, email in enumerate(emails):  # oldest first, in the order given
            await conn.execute(
                text(
                    "INSERT INTO users (id, email, first_name, last_name, password_hash, "
                    "status, email_verified, extra, create_time, update_time) VALUES "
                    "(:id, :email, '', '', 'h', 'active', true, '{}', :now, :now)"
                ),
                {"id": uuid.uuid4().hex, "email": email, "now": _NOW + timedelta(seconds=seconds)},
            )


async def _rows(engine: AsyncEngine, columns: str) -> set[tuple[str, ...]]:
    async with engine.connect() as conn:
        return {tuple(row) for row in await conn.execute(text(f"SELECT {columns} FROM users"))}  # noqa: S608


async def test_every_address_gets_its_key(engine: AsyncEngine) -> None:
    await _add(engine, "Ada@Example.com", "İlse@example.com", "jose\u0301@example.com")
    await upgrade(engine)
    assert await _rows(engine, "email, email_key") == {
        ("Ada@Example.com", "ada@example.com"),
        ("İlse@example.com", "i̇lse@example.com"),
        ("jos\u00e9@example.com", "jos\u00e9@example.com"),  # stored composed from now on
    }


async def test_addresses_that_become_one_refuse_the_upgrade_by_name(engine: AsyncEngine) -> None:
    await _add(engine, "İlse@example.com", "i̇lse@example.com", "ada@example.com")
    before = await _rows(engine, "email")
    with pytest.raises(MigrationRefused, match="'İlse@example.com' and 'i̇lse@example.com'"):
        await upgrade(engine)
    assert await _rows(engine, "email") == before
    async with engine.connect() as conn:
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
    assert revision == "0002"
