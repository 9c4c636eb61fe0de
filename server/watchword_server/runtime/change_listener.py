"""Hears every server process's change notices and applies them to this process's cache.

One task per process holds a dedicated PostgreSQL connection that LISTENs on the changes
channel. The cache is on only while that connection is up: it is enabled (empty) once
LISTEN has succeeded, and disabled (emptied) the moment the connection is lost, so no
answer cached before a missed change is ever served. The task reconnects with backoff.
SQLite has one process and no notifications: its cache is simply on.
"""

from __future__ import annotations

import asyncio
import logging

from watchword_server.domain.access.changes import Change
from watchword_server.domain.access.check_cache import CacheGroup
from watchword_server.storage.db import Database
from watchword_server.storage.listener import ListenerLost, NotificationListener
from watchword_server.storage.notices import CHANGES_CHANNEL

__all__ = ["APPLICATION_NAME", "ChangeListener"]

_log = logging.getLogger(__name__)

APPLICATION_NAME = "watchword-changes"
"""The ``application_name`` of the LISTEN connection, to find it in ``pg_stat_activity``."""

_RECONNECT_FIRST = 0.2
_RECONNECT_MAX = 5.0
# How long one wait for notifications lasts; a lost connection is noticed at once anyway.
_WAIT = 5.0


class ChangeListener:
    """Keeps ``cache`` coherent with the changes every process commits."""

    def __init__(self, database: Database, cache: CacheGroup) -> None:
        self._database = database
        self._cache = cache
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        """Start listening in the background (SQLite: turn the cache on)."""
        if not self._database.is_postgresql:
            self._cache.enable()
            return
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="watchword-changes")

    async def stop(self) -> None:
        """Stop listening and turn the cache off."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._cache.disable()

    async def _run(self) -> None:
        delay = _RECONNECT_FIRST
        while True:
            try:
                listener = await NotificationListener.open(
                    self._database, CHANGES_CHANNEL, application_name=APPLICATION_NAME
                )
            except ListenerLost as error:
                _log.warning(
                    "cannot listen for changes (%s): checks are not cached; retrying in %.1f s",
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX)
                continue
            delay = _RECONNECT_FIRST
            # Changes committed before LISTEN took effect were never heard: start empty.
            self._cache.enable()
            self.connected.set()
            try:
                await self._listen(listener)
            except ListenerLost as error:
                _log.warning("lost the connection that listens for changes (%s)", error)
            except Exception:
                _log.exception("listening for changes failed")
            finally:
                self._cache.disable()
                self.connected.clear()
                await listener.close()
            await asyncio.sleep(delay)

    async def _listen(self, listener: NotificationListener) -> None:
        while True:
            async for payload in listener.payloads(timeout=_WAIT):
                xid, _, body = payload.partition(" ")
                self._cache.apply(Change.decode(body), "x" + xid if xid.isdigit() else "")
