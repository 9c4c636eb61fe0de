"""Engine creation for PostgreSQL (psycopg 3) and the embedded SQLite file (aiosqlite)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias, TypeVar

import psycopg
import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from watchword_server.model.errors import DependencyUnavailable
from watchword_server.storage.conflicts import retrying

__all__ = [
    "Connection",
    "Database",
    "DatabaseUnavailable",
    "Engine",
    "create_engine",
    "database_file",
    "is_unreachable",
    "normalize_url",
]


T = TypeVar("T")

Engine: TypeAlias = AsyncEngine
"""The engine a server process opens once and shares (SQLAlchemy's, named here so that no
module outside storage imports SQLAlchemy to hold one)."""


class DatabaseUnavailable(DependencyUnavailable):
    """The database cannot be reached (or no connection was free in time)."""


# What the drivers raise when the server is down, restarting, unreachable or lost the
# connection, and what the pool raises when no connection comes in time. (OperationalError
# also covers a serialization failure or deadlock that outlived its retries: transient too.)
_UNREACHABLE = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached now (worth a retry)."""
    if isinstance(error, (DatabaseUnavailable, *_UNREACHABLE)):
        return True
    return isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated


@contextlib.asynccontextmanager
async def _reaching(
    opened: AbstractAsyncContextManager[AsyncConnection],
) -> AsyncIterator[AsyncConnection]:
    # Driver errors of an unreachable database become DatabaseUnavailable, whether they
    # come from connecting, a statement inside the block, or the commit.
    try:
        async with opened as conn:
            yield conn
    except DatabaseUnavailable:
        raise
    except Exception as error:
        if is_unreachable(error):
            raise DatabaseUnavailable(f"the database cannot be reached: {error}") from error
        raise


_CONNECT_TIMEOUT = 5


def normalize_url(url: str) -> str:
    """Pick our async drivers for plain ``postgresql://`` and ``sqlite://`` URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def database_file(url: str) -> str | None:
    """The file (or path) part of a database URL: an SQLite database's file."""
    return make_url(url).database


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine for ``url``.

    SQLite gets WAL and a busy timeout so concurrent RPCs wait for the single writer
    instead of failing with "database is locked".
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, poolclass=NullPool, connect_args={"timeout": 30})
        _tune_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=30,
        # An unreachable host (rather than a stopped server, which refuses at once) must
        # not hold a call for the kernel's minutes: it is UNAVAILABLE after this.
        connect_args={"connect_timeout": _CONNECT_TIMEOUT},
    )


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand BEGIN to SQLAlchemy (see _on_begin) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN so two
    # writers never deadlock upgrading read locks.
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


Connection: TypeAlias = AsyncConnection
"""A connection inside a transaction: the domain passes it on to repositories untouched."""


class Database:
    """What the domain holds of storage: transactions and plain connections.

    Every write runs in ``transaction()``, which tries it again when it loses to a
    concurrent transaction; ``connect()`` is for reads that need no transaction of their
    own. The domain never touches SQLAlchemy beyond these.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._after_commit: dict[Connection, list[Callable[[], None]]] = {}

    def pool_use(self) -> tuple[int, int]:
        """Connections of the engine's pool in use, and the most it keeps open."""
        pool = self.engine.pool
        in_use = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        return (
            int(in_use()) if callable(in_use) else 0,
            int(size()) if callable(size) else 0,
        )

    async def transaction(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """``await work(conn)`` in a transaction (``begin``) and commit; what it returns.

        A transaction refused for a conflict with a concurrent one (a serialization failure
        or deadlock) is rolled back and ``work`` runs again in a new one, a few times (see
        ``storage.conflicts``); so ``work`` must do nothing outside the transaction that may
        not be repeated (``after_commit`` hooks are per attempt). Errors of ``work`` itself
        roll back and propagate at once.
        """

        async def attempt() -> T:
            async with self.begin() as conn:
                return await work(conn)

        return await retrying(attempt)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Connection]:
        """A connection in a transaction that commits on success and rolls back on error,
        tried once (the domain uses ``transaction``; this is for tools and tests).

        Callbacks registered with ``after_commit`` run once the commit has succeeded.
        """
        hooks: list[Callable[[], None]] = []
        async with _reaching(self.engine.begin()) as conn:
            self._after_commit[conn] = hooks
            try:
                yield conn
            finally:
                del self._after_commit[conn]
        for hook in hooks:
            hook()

    def after_commit(self, conn: Connection, hook: Callable[[], None]) -> None:
        """Run ``hook`` after ``conn``'s transaction (from ``begin``) commits; never if it
        rolls back. Hooks must not raise."""
        try:
            self._after_commit[conn].append(hook)
        except KeyError:
            raise RuntimeError(
                "after_commit needs a transaction from Database.transaction()"
            ) from None

    def connect(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads (the caller may commit what it writes)."""
        return _reaching(self.engine.connect())

    async def ping(self) -> None:
        """Ask the database for a trivial answer (raises DatabaseUnavailable if it cannot
        be reached)."""
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @property
    def is_postgresql(self) -> bool:
        """Whether this is PostgreSQL (row locks, LISTEN/NOTIFY) rather than SQLite."""
        return self.engine.dialect.name == "postgresql"

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()
