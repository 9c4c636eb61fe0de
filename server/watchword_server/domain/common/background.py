"""Work a call starts and does not wait for, bounded and drained at shutdown.

For answers that must not tell by their timing what the work found: RequestPasswordReset
answers once it has read the account, and issues the key (a write and a flushed commit,
several milliseconds) afterwards, so a known address answers as fast as an unknown one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from watchword_server.model.errors import Overloaded

__all__ = ["BackgroundWork"]

_log = logging.getLogger(__name__)


class BackgroundWork:
    """Runs coroutines as tasks, at most ``limit`` at once.

    Args:
        limit: how many may run at once: past it ``refuse_if_full`` refuses, so a caller
            decides before doing anything whose outcome the refusal could reveal.
        delay: seconds before the work begins. A task runs its first step before the
            event loop gets back to the call that started it, so without this the
            work's first slice of CPU (a pool checkout, a BEGIN) would delay that call's
            answer, and tell by its timing that there was work.
    """

    def __init__(self, *, limit: int = 256, delay: float = 0.01) -> None:
        self._limit = limit
        self._delay = delay
        self._tasks: set[asyncio.Task[None]] = set()

    def refuse_if_full(self) -> None:
        """Raise Overloaded (retry in a second) when ``limit`` pieces of work are running."""
        if len(self._tasks) >= self._limit:
            raise Overloaded(metadata={"retry_after": "1"})

    def start(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run ``work`` in the background; its failure is logged, never raised. (The limit
        is ``refuse_if_full``'s to enforce, before the caller's own work.)"""
        task = asyncio.create_task(self._later(work), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _later(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await asyncio.sleep(self._delay)
        except asyncio.CancelledError:
            work.close()
            raise
        await work

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def idle(self) -> None:
        """Wait until no work is under way (work started meanwhile is waited for too)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the work under way, then cancel what is left."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        _, late = await asyncio.wait(pending, timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            _log.warning("cancelled %d pieces of background work at shutdown", len(late))
            await asyncio.gather(*late, return_exceptions=True)
