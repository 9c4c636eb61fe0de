"""A small, bounded cache of check answers that forgets them after a fixed time.

Private to ``requires`` (:mod:`watchword._requires`). Entries expire ``ttl`` seconds after they were
stored, whether or not they were read since: the point is to bound how stale an answer
may be (a blocked user keeps access for at most ``ttl``), not to keep hot entries alive.
Insertion order is therefore also expiry order, so evicting the oldest entry when full
evicts the one closest to expiring anyway.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Literal, TypeVar

__all__ = ["MISS", "CheckCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Miss(enum.Enum):
    MISS = enum.auto()


MISS: Literal[_Miss.MISS] = _Miss.MISS
"""What :meth:`CheckCache.get` returns for an absent or expired key (``None`` is a value)."""


class CheckCache(Generic[K, V]):
    """Answers by key, each kept for ``ttl`` seconds, at most ``max_entries`` of them.

    Args:
        ttl: Seconds an answer stays valid; must be positive.
        max_entries: The most answers kept; the oldest goes first when full.
        clock: Seconds from any fixed origin (``time.monotonic``); tests pass their own.
    """

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | Literal[_Miss.MISS]:
        """The answer stored under ``key``, or :data:`MISS` if absent or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return MISS
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds from now."""
        now = self._clock()
        self._entries.pop(key, None)
        self._entries[key] = (now + self._ttl, value)
        # Drop what has expired at the old end first, then the oldest if still too many.
        while self._entries:
            oldest_expiry, _ = next(iter(self._entries.values()))
            if oldest_expiry > now and len(self._entries) <= self._max_entries:
                break
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every answer."""
        self._entries.clear()
