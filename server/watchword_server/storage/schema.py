"""Schema version checks and upgrades through Alembic, on the server's own engine."""

from __future__ import annotations

import enum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["SchemaState", "alembic_config", "head_revision", "schema_state", "upgrade"]

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


async def schema_state(engine: AsyncEngine) -> SchemaState:
    """Tell whether the schema is current, behind (migrations pending) or unknown (newer)."""

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        revision = await connection.run_sync(current)
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

    async with engine.begin() as connection:
        await connection.run_sync(run)
