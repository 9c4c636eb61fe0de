"""A step run now and then in the background, stopped between steps, never in one.

Cancelling a task in the middle of a database call leaves the driver's work running on
without it: with SQLite (aiosqlite) its worker thread then answers an event loop that may
be closed by then. So a periodic job is asked to stop and finishes the step under way
(within a grace period); only a step that overruns it is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]


class Periodic:
    """Runs ``step`` every ``interval`` seconds in a task of its own, the first at once.

    ``step`` handles its own failures: one that raises ends the job.
    """

    def __init__(self, step: Callable[[], Awaitable[None]], interval: float, name: str) -> None:
        self._step = step
        self._interval = interval
        self._name = name
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the job (again, after a stop)."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self, grace: float = 5.0) -> None:
        """Let the step under way finish (within ``grace`` seconds) and run no more."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        await asyncio.wait([task], timeout=grace)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)
