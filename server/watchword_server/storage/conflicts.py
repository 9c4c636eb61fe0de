"""Transactions that lose to a concurrent one, and running them again.

Under SERIALIZABLE (the default of CockroachDB and YugabyteDB, and of a PostgreSQL set so)
the database may refuse a transaction because it conflicts with a concurrent one: a
serialization failure (SQLSTATE 40001) or a deadlock (40P01). Nothing of it took effect,
and the same work in a new transaction will normally succeed, so every write is run
through ``retrying``: a few attempts with a growing, jittered pause so that the losers of
one conflict do not collide again. Other isolation levels see these errors too (deadlocks;
a row-lock wait that the other side's update invalidates under REPEATABLE READ).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["ATTEMPTS", "is_conflict", "retrying"]

T = TypeVar("T")

ATTEMPTS = 8
"""How many times conflicting work is tried before its conflict is the caller's
(UNAVAILABLE with a retry delay): the pauses add up to about a third of a second."""

_CONFLICTS = frozenset({"40001", "40P01"})
_FIRST_PAUSE = 0.002
_LONGEST_PAUSE = 0.1


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` (or what it wraps) is a serialization failure or a deadlock."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in _CONFLICTS:
            return True
        # SQLAlchemy keeps the driver's error as ``orig``; we chain with ``from``.
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def _pause(attempt: int) -> float:
    # "Full jitter": anywhere up to an exponentially growing ceiling.
    ceiling = min(_LONGEST_PAUSE, _FIRST_PAUSE * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - timing jitter, not a secret


async def retrying(run: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """``await run()``, again after a pause each time it fails with a conflict, at most
    ``attempts`` times in all; the last conflict (and every other error) propagates.

    ``run`` must be all-or-nothing (one transaction) and must not do anything outside it
    that may not be repeated.
    """
    attempt = 1
    while True:
        try:
            return await run()
        except Exception as error:
            if attempt >= attempts or not is_conflict(error):
                raise
        await asyncio.sleep(_pause(attempt))
        attempt += 1
