"""Bookkeeping writes taken off the hot path: sessions' last use and service keys' last use.

Checks and Introspect only read. When a session's window must slide, or a service key's
``last_used_time`` is due, they note it here; a background task writes what was noted about
once a second, in one transaction of batched UPDATEs. A crash loses at most that second of
bookkeeping: a session then expires up to a tenth of its window (plus that second) early.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime

from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import service_keys as key_rows
from watchword_server.storage.repositories import sessions as session_rows

__all__ = ["TouchWriter"]

# Seconds a write under way at stop may take before it is cancelled.
_STOP_GRACE = 5.0

_log = logging.getLogger(__name__)


class TouchWriter:
    """Collects last-use times and writes them in batches.

    Args:
        database: where they are written.
        interval: seconds between writes.
    """

    def __init__(self, database: Database, *, interval: float = 1.0) -> None:
        self._database = database
        self._interval = interval
        self._sessions: dict[uuid.UUID, datetime] = {}
        self._keys: dict[uuid.UUID, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def session_used(self, session_id: uuid.UUID, when: datetime) -> None:
        """Note that a session was used at ``when`` (its window slides to there)."""
        known = self._sessions.get(session_id)
        if known is None or when > known:
            self._sessions[session_id] = when

    def key_used(self, key_id: uuid.UUID, when: datetime) -> None:
        """Note that a service key was used at ``when``."""
        known = self._keys.get(key_id)
        if known is None or when > known:
            self._keys[key_id] = when

    async def start(self) -> None:
        """Start writing in the background."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="watchword-touches")

    async def stop(self) -> None:
        """Write what is pending and stop."""
        task, self._task = self._task, None
        if task is not None:
            # A write under way finishes first: cancelled inside a database call, the
            # driver's work would run on without us (see runtime/periodic.py).
            self._stopping.set()
            await asyncio.wait([task], timeout=_STOP_GRACE)
            task.cancel()
            await asyncio.wait([task])
        try:
            await self.flush()
        except Exception as error:
            _log.warning("could not write the last sessions' and keys' use times: %s", error)

    async def flush(self) -> None:
        """Write everything noted so far (kept for the next try if the write fails)."""
        sessions, self._sessions = self._sessions, {}
        keys, self._keys = self._keys, {}
        if not sessions and not keys:
            return
        try:

            async def write(conn: Connection) -> None:
                await session_rows.touch_many(conn, sessions)
                await key_rows.touch_many(conn, keys)

            await self._database.transaction(write)
        except BaseException:
            for session_id, when in sessions.items():
                self.session_used(session_id, when)
            for key_id, when in keys.items():
                self.key_used(key_id, when)
            raise

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self._interval)
            except TimeoutError:
                pass
            else:
                return
            try:
                await self.flush()
            except Exception as error:
                _log.warning("writing sessions' and keys' use times failed (%s); retrying", error)
