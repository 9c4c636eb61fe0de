"""Schema version checks and upgrades through Alembic, on the server's own engine."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword_server.storage.db import DatabaseUnavailable

__all__ = [
    "MigrationRefused",
    "SchemaState",
    "alembic_config",
    "current_revision",
    "head_revision",
    "schema_state",
    "upgrade",
]


class MigrationRefused(RuntimeError):
    """A migration found data it must not decide about; its message says what to do."""


_MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaState(enum.Enum):
    """How the database's schema compares with the migrations this code ships."""

    CURRENT = "current"
    BEHIND = "behind"
    UNKNOWN = "unknown"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at our migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision among the shipped migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("no migrations are shipped")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database's schema is at (None: no schema yet)."""

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    with _reaching(engine):
        async with engine.connect() as connection:
            return await connection.run_sync(current)


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Tell whether the schema is current, behind (migrations pending) or unknown (newer)."""
    revision = await current_revision(engine)
    if revision == head_revision():
        return SchemaState.CURRENT
    if revision is None:
        return SchemaState.BEHIND
    script = ScriptDirectory.from_config(alembic_config())
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    return SchemaState.BEHIND if known else SchemaState.UNKNOWN


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply the pending migrations in one transaction."""

    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    with _reaching(engine):
        async with engine.begin() as connection:
            await connection.run_sync(run)


@contextlib.contextmanager
def _reaching(engine: AsyncEngine) -> Iterator[None]:
    # At start the operator needs one line that says which database and why, not a
    # driver's traceback.
    try:
        yield
    except (DBAPIError, OSError) as error:
        original = getattr(error, "orig", None) or error
        reason = (str(original).strip().splitlines() or ["no reason given"])[0]
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(
            f"cannot use the database {where}: {reason} (is PostgreSQL running there, and does "
            "the database exist?)"
        ) from error
