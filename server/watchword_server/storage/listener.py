"""A dedicated PostgreSQL connection that LISTENs on a channel (storage's side of
WatchEvents); the domain sees payloads and one exception, never the driver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from watchword_server.storage.db import Database

__all__ = ["ListenerLost", "NotificationListener"]

# libpq settings for the LISTEN connection unless the URL sets them: a peer that vanishes
# without closing the socket is noticed within a minute instead of never.
_CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


class ListenerLost(Exception):
    """The LISTEN connection could not be opened or was lost."""


class NotificationListener:
    """One autocommit connection that LISTENs on ``channel``."""

    def __init__(self, connection: psycopg.AsyncConnection[TupleRow]) -> None:
        self._connection = connection

    @classmethod
    async def open(
        cls, database: Database, channel: str, *, application_name: str
    ) -> NotificationListener:
        """Connect to ``database`` and LISTEN; raises ListenerLost if that fails."""
        try:
            connection = await psycopg.AsyncConnection.connect(
                _conninfo(database, application_name), autocommit=True
            )
        except (psycopg.Error, OSError) as error:
            raise ListenerLost(str(error)) from error
        try:
            await connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except (psycopg.Error, OSError) as error:
            await _close_quietly(connection)
            raise ListenerLost(str(error)) from error
        except BaseException:
            await _close_quietly(connection)
            raise
        return cls(connection)

    async def payloads(self, timeout: float) -> AsyncIterator[str]:
        """The payloads of the next batch of notifications, or none after ``timeout`` s.

        Raises:
            ListenerLost: the connection broke.
        """
        try:
            async for note in self._connection.notifies(timeout=timeout, stop_after=1):
                yield note.payload
        except (psycopg.Error, OSError) as error:
            raise ListenerLost(str(error)) from error

    async def close(self) -> None:
        """Close the connection, ignoring a connection that is already broken."""
        await _close_quietly(self._connection)


def _conninfo(database: Database, application_name: str) -> str:
    """A libpq connection string for the database, password included."""
    # libpq reads the engine's URL once the SQLAlchemy driver suffix is gone.
    url = database.engine.url.set(drivername="postgresql")
    params: dict[str, Any] = {
        **_CONNECTION_DEFAULTS,
        **conninfo_to_dict(url.render_as_string(hide_password=False)),
    }
    params["application_name"] = application_name
    return make_conninfo("", **params)


async def _close_quietly(connection: psycopg.AsyncConnection[TupleRow]) -> None:
    with contextlib.suppress(psycopg.Error, OSError):
        await connection.close()
