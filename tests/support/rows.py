"""The test database's rows, read directly on either backend.

Tests that check what was stored (events, hashes, keys) read through the schema's own
tables, so a column decodes alike on PostgreSQL and on the embedded SQLite (a UUID is a
UUID, a time an aware datetime), and such a test runs on both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import make_url

from watchword_server.storage.models import Base

__all__ = ["table_rows", "update_rows"]


def table_rows(
    database_url: str, table: str, *columns: str, order_by: str | None = None
) -> list[dict[str, Any]]:
    """The rows of ``table`` (only ``columns``, if named), by column name, in ``order_by``
    order (a column name) or the database's."""
    schema_table = Base.metadata.tables[table]
    selected = [schema_table.c[name] for name in columns] if columns else [schema_table]
    statement = select(*selected)
    if order_by is not None:
        statement = statement.order_by(schema_table.c[order_by])
    engine = create_engine(_blocking(database_url))
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(statement)]
    finally:
        engine.dispose()


async def update_rows(
    database_url: str, table: str, *, where: Mapping[str, Any] | None = None, **values: Any
) -> None:
    """Set ``values`` (column name to value) on the rows of ``table`` whose columns equal
    ``where`` (every row without it), behind the server's back, as another tool would.

    In a thread: an in-process server on the embedded SQLite may be inside a write of its
    own (retention, a login's bookkeeping), which it can only finish while its event loop,
    the test's, runs; blocking the loop here would wait on that write until SQLite gives up.
    """
    await asyncio.to_thread(_update_rows, database_url, table, where, values)


def _update_rows(
    database_url: str, table: str, where: Mapping[str, Any] | None, values: Mapping[str, Any]
) -> None:
    schema_table = Base.metadata.tables[table]
    statement = update(schema_table).values(**values)
    for name, value in (where or {}).items():
        statement = statement.where(schema_table.c[name] == value)
    engine = create_engine(_blocking(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    finally:
        engine.dispose()


def _blocking(database_url: str) -> str:
    # The server's async drivers, swapped for their blocking twins (psycopg is both).
    url = make_url(database_url)
    if url.drivername == "sqlite+aiosqlite":
        url = url.set(drivername="sqlite")
    return url.render_as_string(hide_password=False)
