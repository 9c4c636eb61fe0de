"""Tells whether the database answers, for the gRPC health service.

A probe (``SELECT 1`` on a fresh checkout from the pool, within a timeout) runs every
``interval`` seconds; when its outcome flips, ``on_change`` hears it. While the database is
down every RPC answers UNAVAILABLE anyway; the health status lets load balancers and
orchestrators send callers elsewhere meanwhile, and back once it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from watchword_server.runtime.periodic import Periodic
from watchword_server.storage.db import Database, DatabaseUnavailable

__all__ = ["DatabaseWatch"]

_log = logging.getLogger(__name__)


class DatabaseWatch:
    """Probes ``database`` in the background and reports each change of reachability.

    Args:
        database: what to probe.
        on_change: called with True (reachable) or False, once per change; the database is
            taken as reachable at start.
        interval: seconds between probes.
        timeout: seconds a probe may take before it counts as failed.
    """

    def __init__(
        self,
        database: Database,
        on_change: Callable[[bool], Awaitable[None]],
        *,
        interval: float = 1.0,
        timeout: float = 2.0,
    ) -> None:
        self._database = database
        self._on_change = on_change
        self._interval = interval
        self._timeout = timeout
        self.reachable = True
        self._job = Periodic(self._round, interval, "watchword-database-watch")

    async def start(self) -> None:
        """Start probing."""
        self._job.start()

    async def stop(self) -> None:
        """Stop probing (a probe under way finishes first)."""
        await self._job.stop(grace=self._timeout)

    async def _round(self) -> None:
        reachable = await self.probe()
        if reachable != self.reachable:
            self.reachable = reachable
            if reachable:
                _log.info("the database answers again")
            else:
                _log.warning("the database does not answer: health is NOT_SERVING")
            await self._on_change(reachable)

    async def probe(self) -> bool:
        """Whether the database answers a query now."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._database.ping()
        except (DatabaseUnavailable, TimeoutError):
            return False
        return True
