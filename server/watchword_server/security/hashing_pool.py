"""The one bounded pool of threads that hashes and verifies passwords for every flow.

Password hashing is CPU-bound by design, and bcrypt and ``hashlib.pbkdf2_hmac`` release the
GIL, so threads use idle cores while the event loop keeps serving. Three rules keep a login
storm from starving the access checks that share the process:

* **As many threads as cores** (or the ``password_hash_threads`` setting): more would only
  queue inside the kernel instead of here, where the queue can be bounded.
* **Lower CPU priority where hashing would take the loop's core**: up to cores - 1 threads
  run at the process's priority, and the rest raise their own nice value (Linux schedules
  threads individually), so when every core is hashing the event loop thread still wins
  one. A job goes to a prompt thread whenever one is free: a lone login is not slowed by
  a niced thread, which the kernel lets any other runnable task delay.
* **A bounded queue**: past ``max_waiting`` jobs waiting behind the running ones, a call is
  refused at once with ``Overloaded`` (``RESOURCE_EXHAUSTED``) and a ``retry_after`` estimate,
  instead of piling up work nobody will wait for. The refusal happens before the job runs,
  so a flow that checks a password meets it before writing anything.

Unknown accounts are verified against a dummy hash through the same pool (``verify_dummy``),
so admission and queueing treat them exactly like known ones.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

# Domain errors are plain Python with no imports of ours (the model layer to be), so the
# pool can refuse with the error every caller already maps to RESOURCE_EXHAUSTED.
from watchword_server.model.errors import Overloaded
from watchword_server.security.passwords import PasswordHasher

__all__ = ["HashingPool", "default_thread_count"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Weight of the newest job in the running mean of job durations (behind ``retry_after``).
_DURATION_WEIGHT: Final = 0.2
_MAX_NICE: Final = 19


def default_thread_count() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _lower_own_priority(niceness: int) -> None:
    """Thread initializer: make the calling thread ``niceness`` steps nicer (best effort).

    Only on Linux, where ``PRIO_PROCESS`` with a thread id applies to that one thread (on
    other systems the same call would target a process, or fail). Raising one's own nice
    value needs no privilege; if it fails anyway, hashing simply runs at normal priority.
    """
    if niceness <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        thread_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(_MAX_NICE, current + niceness))
    except OSError as error:
        _log.warning("cannot lower the priority of a password hashing thread: %s", error)


class _Lane:
    """Threads of one priority; each job is handed to a free one, never queued inside."""

    def __init__(self, size: int, niceness: int, name: str) -> None:
        self.size = size
        self.busy = 0
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, size),
            thread_name_prefix=name,
            initializer=_lower_own_priority,
            initargs=(niceness,),
        )


# The caller's future is an asyncio one that the pool thread settles through
# ``call_soon_threadsafe``: one hop back to the loop, where ``asyncio.wrap_future`` takes
# two (about 0.15 ms of a login's latency on these machines).
_Job = tuple["asyncio.Future[Any]", Callable[..., Any], tuple[object, ...]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    # On the loop's thread: the caller may have stopped waiting meanwhile.
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class HashingPool:
    """Runs a ``PasswordHasher`` on a bounded pool of threads, the extra ones niced.

    Every method must be called from the event loop's thread; the jobs run on the pool's.

    Args:
        hasher: The hasher whose blocking methods the pool runs.
        threads: Worker threads; 0 means one per core (``default_thread_count``).
        max_waiting: Jobs that may wait for a thread beyond those running; one more is
            refused with ``Overloaded``.
        niceness: How many nice steps below the process the threads beyond cores - 1 run
            (0 leaves them all at the process's priority).
        cores: The cores the process may use (default: ``default_thread_count``).
        timer: Seconds as a float, for timing jobs (a seam for tests).
    """

    def __init__(
        self,
        hasher: PasswordHasher,
        *,
        threads: int = 0,
        max_waiting: int = 32,
        niceness: int = 10,
        cores: int = 0,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if threads < 0 or max_waiting < 0 or niceness < 0 or cores < 0:
            raise ValueError("threads, max_waiting, niceness and cores must not be negative")
        self._hasher: Final = hasher
        self._timer: Final = timer
        self._threads: Final = threads or default_thread_count()
        self._max_waiting: Final = max_waiting
        cores = cores or default_thread_count()
        prompt = self._threads if niceness == 0 else min(self._threads, cores - 1)
        # Free prompt threads are preferred; the niced ones take what is left.
        self._lanes: Final = [
            lane
            for lane in (
                _Lane(prompt, 0, "watchword-hash"),
                _Lane(self._threads - prompt, niceness, "watchword-hash-niced"),
            )
            if lane.size
        ]
        # Jobs are counted from admission until their thread is done with them (not until
        # their caller stops waiting: a cancelled call may leave its job running).
        self._lock = threading.Lock()
        self._admitted = 0
        self._waiting: collections.deque[_Job] = collections.deque()
        self._mean_duration = 0.0

    @property
    def hasher(self) -> PasswordHasher:
        """The hasher the pool runs."""
        return self._hasher

    @property
    def threads(self) -> int:
        """How many jobs run at once."""
        return self._threads

    @property
    def max_waiting(self) -> int:
        """How many jobs may wait beyond the running ones."""
        return self._max_waiting

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        return self._admitted

    def refuse_if_full(self) -> None:
        """Raise Overloaded now if a job submitted now would be refused: lets a caller skip
        work that leads to a hash (admission is still decided by ``submit``)."""
        with self._lock:
            if self._admitted >= self._threads + self._max_waiting:
                raise Overloaded(metadata={"retry_after": str(self._retry_after())})

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` should be replaced after a successful login (cheap, no hash)."""
        return self._hasher.needs_rehash(stored)

    async def hash(self, password: str) -> str:
        """Hash a new password.

        Raises:
            Overloaded: too many jobs are waiting already.
        """
        return await self.submit(self._hasher.hash, password)

    async def verify(self, password: str, stored: str) -> bool:
        """Check a password against its stored hash.

        Raises:
            Overloaded: too many jobs are waiting already.
        """
        return await self.submit(self._hasher.verify, password, stored)

    async def verify_dummy(self, password: str) -> bool:
        """Spend a verification's time for an unknown account; always False.

        Raises:
            Overloaded: too many jobs are waiting already (exactly as ``verify`` would).
        """
        return await self.submit(self._hasher.verify_dummy, password)

    def submit(self, job: Callable[..., _T], *args: object) -> asyncio.Future[_T]:
        """Admit ``job(*args)`` to the pool now, or refuse it now.

        Admission is decided before this returns, so a caller that gets a future holds its
        place; awaiting the future gives the job's result.

        Raises:
            Overloaded: ``max_waiting`` jobs are waiting already; its metadata carries
                ``retry_after``, whole seconds until a place is likely free.
        """
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        with self._lock:
            if self._admitted >= self._threads + self._max_waiting:
                retry_after = self._retry_after()
                raise Overloaded(metadata={"retry_after": str(retry_after)})
            self._admitted += 1
            lane = next((lane for lane in self._lanes if lane.busy < lane.size), None)
            if lane is None:
                self._waiting.append((future, job, args))
            else:
                lane.busy += 1
        if lane is not None:
            try:
                lane.executor.submit(self._work, lane, (future, job, args))
            except BaseException:
                with self._lock:
                    lane.busy -= 1
                    self._admitted -= 1
                raise
        return future

    def close(self) -> None:
        """Stop the threads once their current jobs end; jobs still waiting are cancelled."""
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
            self._admitted -= len(waiting)
        for future, _job, _args in waiting:
            future.cancel()
        for lane in self._lanes:
            lane.executor.shutdown(wait=False, cancel_futures=True)

    def _work(self, lane: _Lane, job: _Job) -> None:
        # On a pool thread: run the job, then the jobs waiting, until none waits. A job's
        # place is given back before its caller hears the result, so a caller that got its
        # answer never finds its own job still counted.
        next_job: _Job | None = job
        while next_job is not None:
            future, function, args = next_job
            # Read off the loop's thread, so a cancel may come just after: the job then runs
            # for nobody, as one cancelled while running does.
            outcome = None if future.cancelled() else self._run(function, args)
            with self._lock:
                self._admitted -= 1
                next_job = self._waiting.popleft() if self._waiting else None
                if next_job is None:
                    lane.busy -= 1
            if outcome is not None:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    future.get_loop().call_soon_threadsafe(_settle, future, *outcome)

    def _run(
        self, function: Callable[..., Any], args: tuple[object, ...]
    ) -> tuple[Any, BaseException | None]:
        started = self._timer()
        try:
            return function(*args), None
        except BaseException as error:
            return None, error
        finally:
            elapsed = self._timer() - started
            with self._lock:
                if self._mean_duration == 0.0:
                    self._mean_duration = elapsed
                else:
                    self._mean_duration += _DURATION_WEIGHT * (elapsed - self._mean_duration)

    def _retry_after(self) -> int:
        # Called under the lock. The job refused now would start once every waiting job and
        # itself have moved up a place: (waiting + 1) durations spread over the threads.
        waiting = max(0, self._admitted - self._threads)
        estimate = (waiting + 1) * self._mean_duration / self._threads
        return max(1, math.ceil(estimate))
