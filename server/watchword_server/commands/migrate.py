"""``watchword migrate``: bring the database schema up to date (needs no pepper)."""

from __future__ import annotations

import argparse
import asyncio

from watchword_server.commands import CommandError
from watchword_server.config import Settings
from watchword_server.storage.db import create_engine
from watchword_server.storage.schema import MigrationRefused, current_revision, upgrade

__all__ = ["run"]


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Migrate and say from which revision to which; returns the exit status.

    Raises:
        CommandError: the migration was refused; the message says why.
    """
    try:
        asyncio.run(_migrate(settings))
    except MigrationRefused as error:
        raise CommandError(str(error)) from None
    return 0


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        before = await current_revision(engine)
        await upgrade(engine)
        after = await current_revision(engine)
    finally:
        await engine.dispose()
    if before == after:
        print(f"watchword: the database schema is up to date (revision {after})")
    else:
        print(f"watchword: the database schema is migrated from {before or 'empty'} to {after}")
