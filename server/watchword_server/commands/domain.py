"""The domain as the commands that read and change data open it: schema checked, no mail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from watchword_server.config import Settings
from watchword_server.domain.common.clock import SystemClock
from watchword_server.runtime.mail_transports import LogTransport
from watchword_server.startup import check_schema
from watchword_server.storage.db import Database, create_engine
from watchword_server.wiring import Domain, build_domain

__all__ = ["open_domain"]


@asynccontextmanager
async def open_domain(settings: Settings) -> AsyncIterator[Domain]:
    """The domain on the settings' database, its engine disposed of on the way out.

    Raises:
        StartupError: the schema is not this version's (SchemaNotReady says what to run).
    """
    engine = create_engine(settings.database_url)
    try:
        await check_schema(engine, settings)
        # The CLI sends no mail: a user created here needs none.
        yield build_domain(settings, Database(engine), SystemClock(), mail_transport=LogTransport())
    finally:
        await engine.dispose()
