"""The end-to-end tests run on PostgreSQL and on the embedded SQLite default.

Each test that uses a database runs once per backend (``[postgresql]``, ``[sqlite]``),
unless it is marked ``postgres_only``: it needs what only PostgreSQL has (LISTEN/NOTIFY
between processes, row locks across connections, the prepared-statement pool, SQL of its
own against the database). On SQLite each test gets a copy of a database file migrated
once per run. ``make test-serializable`` (WATCHWORD_TEST_ISOLATION) runs PostgreSQL only:
isolation levels are PostgreSQL's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import ISOLATION_ENV
from tests.support.servers import migrate

BACKENDS = ("postgresql",) if os.environ.get(ISOLATION_ENV) else ("postgresql", "sqlite")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" not in metafunc.fixturenames:
        return
    only_postgres = metafunc.definition.get_closest_marker("postgres_only") is not None
    metafunc.parametrize("backend", BACKENDS[:1] if only_postgres else BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database the test runs on."""
    return str(getattr(request, "param", "postgresql"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite database migrated once; each SQLite test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "watchword.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The test's database: the run's PostgreSQL database emptied, or a fresh SQLite file."""
    if backend == "sqlite":
        path = tmp_path / "watchword.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    yield request.getfixturevalue("postgres_database_url")
