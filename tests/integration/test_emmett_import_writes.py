"""The Emmett import's writes on PostgreSQL and SQLite: all of it in one transaction, so a
row that fails halfway leaves nothing behind (and the rows already there untouched)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.support.clock import ManualClock
from tests.support.postgres import postgres_database
from tests.support.servers import settings_for
from watchword_server.domain.imports.emmett_import import EmmettImport
from watchword_server.model.records import UserStatus
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.emmett_source import read_emmett
from watchword_server.storage.models import EmmettImport as Link
from watchword_server.storage.models import Event, Group, Membership, Permission, User
from watchword_server.storage.repositories import emmett_imports
from watchword_server.storage.repositories.users import insert_user
from watchword_server.storage.schema import upgrade

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "emmett" / "default.sqlite"
NOW = datetime(2026, 12, 3, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, postgres_server_url: str, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/w.db"
        return
    with postgres_database(server_url=postgres_server_url) as database:
        yield database


@pytest.fixture
async def database(url: str) -> AsyncIterator[Database]:
    engine = create_engine(url)
    await upgrade(engine)
    yield Database(engine)
    await engine.dispose()


async def _counts(database: Database) -> dict[str, int]:
    async with database.connect() as conn:
        return {
            model.__tablename__: int(
                await conn.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (User, Group, Membership, Permission, Event, Link)
        }


def _importer(url: str, database: Database) -> EmmettImport:
    return EmmettImport(settings_for(url), database, ManualClock(NOW))


async def test_a_failure_at_the_last_step_writes_nothing(
    url: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = await read_emmett(f"sqlite:///{FIXTURE}")

    async def broken(conn: Any, rows: Any) -> list[int]:
        raise emmett_imports.RowTaken("the disk is full, say")

    monkeypatch.setattr(emmett_imports, "insert_events", broken)
    with pytest.raises(emmett_imports.RowTaken):
        await _importer(url, database).run(data, "emmett", skip_conflicts=True)
    assert set((await _counts(database)).values()) == {0}


async def test_an_address_taken_after_the_plan_rolls_everything_back(
    url: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with database.begin() as conn:
        await insert_user(
            conn,
            email="ADA@example.com",
            password_hash="kept",
            first_name="Native",
            last_name="",
            status=UserStatus.ACTIVE,
            email_verified=True,
            extra={},
            now=NOW,
        )
    data = await read_emmett(f"sqlite:///{FIXTURE}")

    # As if the address was registered between the plan's read and the insert.
    async def unseen(conn: Any, keys: Any) -> dict[str, Any]:
        return {}

    monkeypatch.setattr(emmett_imports, "users_with_keys", unseen)
    with pytest.raises(emmett_imports.RowTaken, match="exists now"):
        await _importer(url, database).run(data, "emmett", skip_conflicts=True)
    counts = await _counts(database)
    assert counts.pop("users") == 1 and set(counts.values()) == {0}
    async with database.connect() as conn:
        assert await conn.scalar(select(User.password_hash)) == "kept"


async def test_a_native_account_with_an_imported_address_is_a_conflict(
    url: str, database: Database
) -> None:
    async with database.begin() as conn:
        await insert_user(
            conn,
            email="Ada@Example.com",
            password_hash="kept",
            first_name="Native",
            last_name="",
            status=UserStatus.ACTIVE,
            email_verified=True,
            extra={},
            now=NOW,
        )
    data = await read_emmett(f"sqlite:///{FIXTURE}")
    report = await _importer(url, database).run(data, "emmett")
    assert report.stopped and not report.written
    assert any(
        line.startswith("user 1 <ada@example.com>: the address of a Watchword account")
        for line in report.conflicts
    )
    assert (await _counts(database))["users"] == 1
