"""What every command that opens the database checks first: that the schema is this
version's. Apart from ``app`` so that commands which do not serve need not import the
server (gRPC, the transport) to make the same check."""

from __future__ import annotations

import logging

from watchword_server.config import Settings
from watchword_server.storage.db import Engine
from watchword_server.storage.schema import MigrationRefused, SchemaState, schema_state, upgrade

__all__ = ["SchemaNotReady", "StartupError", "check_schema"]

# The logger it had in app.py, where operators may have filtered it.
_log = logging.getLogger("watchword_server.app")


class StartupError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


class SchemaNotReady(StartupError):
    """The database schema does not match this server; the message says what to run."""


async def check_schema(engine: Engine, settings: Settings) -> None:
    """Make sure the schema is this server's: the embedded default brings its own up to
    date; otherwise raise SchemaNotReady, saying what to run."""
    state = await schema_state(engine)
    if state is SchemaState.BEHIND and settings.migrates_itself:
        _log.info("bringing the embedded database schema up to date")
        try:
            await upgrade(engine)
        except MigrationRefused as error:
            raise StartupError(str(error)) from None
    elif state is SchemaState.BEHIND:
        raise SchemaNotReady(
            "the database schema is behind this server: run `watchword migrate` first"
        )
    elif state is SchemaState.UNKNOWN:
        raise SchemaNotReady("the database schema is newer than this server: upgrade the server")
