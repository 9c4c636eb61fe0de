"""The in-process cache of check answers, sessions and service keys, kept coherent by notices.

Every write that can change an answer publishes a ``Change`` with it (``domain/access/changes.py``);
each server process applies every change, its own right after commit and everyone's as
PostgreSQL delivers them, dropping the entries the change touched. Three rules keep the
cache from ever serving what a delivered change made wrong:

* An answer read from the database is stored only if no change was applied while it was
  being read (``generation``): otherwise it may predate a change that has already been
  applied, and nothing would ever drop it.
* While the process cannot hear changes (its LISTEN connection is down, or not up yet) the
  cache is off and empty: every answer comes from the database. It is cleared again when
  listening resumes, since changes made in between were never heard.
* No entry is used after ``max_staleness`` seconds, notice or not.

Revisions: each applied change has one (see ``domain/access/changes.py``). A check given
``min_revision`` uses cached entries only once this process has applied that revision;
otherwise it reads the database, which already reflects the change (the change committed
before anybody could learn its revision).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from watchword_server.domain.access.changes import Change

__all__ = ["CacheEntry", "CacheGroup", "CheckCache"]

# Revisions remembered as applied (for min_revision), oldest forgotten first. A check that
# names one forgotten since simply reads the database.
_SEEN_REVISIONS = 65_536


class CacheEntry:
    """A cached value, when it was stored, the revision it reflects and its tags."""

    __slots__ = ("revision", "stored", "tags", "value")

    def __init__(
        self, value: Any, stored: float, revision: str, tags: tuple[Hashable, ...]
    ) -> None:
        self.value = value
        self.stored = stored
        self.revision = revision
        self.tags = tags


class CheckCache:
    """Cached answers by key, each tagged with what a change may name (user, session…).

    Args:
        max_staleness: seconds an entry may be used; 0 turns the cache off.
        max_entries: entries kept; the oldest go first beyond that.
        monotonic: the clock for ages (tests may drive it).
    """

    def __init__(
        self,
        *,
        max_staleness: float,
        max_entries: int = 100_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_staleness = max_staleness
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[Hashable, CacheEntry] = {}
        self._tags: dict[Hashable, set[Hashable]] = {}
        self._seen: dict[str, None] = {}
        self.hits = 0
        self.misses = 0
        self._enabled = False
        self.generation = 0
        """Bumped by every applied change, enable and disable: see the module docstring."""
        self.revision = ""
        """The revision of the last change applied here ("" before the first)."""

    @property
    def enabled(self) -> bool:
        """Whether entries are stored and used."""
        return self._enabled

    @property
    def configured(self) -> bool:
        """Whether the settings ask for a cache at all (``check_cache_max_staleness`` > 0)."""
        return self._max_staleness > 0

    def __len__(self) -> int:
        return len(self._entries)

    def enable(self) -> None:
        """Start caching, from empty: changes are heard from now on."""
        self._clear()
        self._enabled = self.configured

    def disable(self) -> None:
        """Stop caching and drop everything: changes can no longer be heard."""
        self._enabled = False
        self._clear()

    def _clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._tags.clear()

    def usable_for(self, min_revision: str) -> bool:
        """Whether cached entries reflect ``min_revision`` ("" = any state)."""
        return not min_revision or min_revision in self._seen

    def get(self, key: Hashable, min_revision: str = "") -> CacheEntry | None:
        """The fresh entry under ``key``, or None (then read the database and ``put``)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if (min_revision and min_revision not in self._seen) or (
            self._monotonic() - entry.stored > self._max_staleness
        ):
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def counts(self) -> tuple[int, int]:
        """Lookups so far that found a fresh entry, and those that did not (for metrics:
        plain counts on the hot path, read at a scrape)."""
        return self.hits, self.misses

    def put(
        self,
        key: Hashable,
        value: Any,
        *,
        generation: int,
        revision: str,
        tags: Iterable[Hashable] = (),
    ) -> None:
        """Store ``value`` read while ``generation`` was current, unless a change came since.

        Args:
            key: the entry's key.
            value: the answer.
            generation: ``self.generation`` taken before the read began.
            revision: ``self.revision`` taken before the read began.
            tags: what a change may name to drop this entry (the key is one implicitly).
        """
        if not self._enabled or generation != self.generation:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._untag(key, old.tags)
        entry = CacheEntry(value, self._monotonic(), revision, tuple(tags))
        self._entries[key] = entry
        for tag in entry.tags:
            self._tags.setdefault(tag, set()).add(key)
        while len(self._entries) > self._max_entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def replace(self, key: Hashable, value: Any) -> None:
        """Change the value of a present entry in place (its age and tags stay)."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.value = value

    def apply(self, change: Change, revision: str) -> None:
        """Drop what ``change`` touched and note ``revision`` as applied."""
        self.generation += 1
        if revision:
            self.revision = revision
            self._seen[revision] = None
            while len(self._seen) > _SEEN_REVISIONS:
                del self._seen[next(iter(self._seen))]
        if change.everything:
            self._entries.clear()
            self._tags.clear()
            return
        for tag in change.tags():
            for key in self._tags.pop(tag, ()):
                self._drop(key)
            self._drop(tag)  # entries keyed by the tag itself (a session, a key)

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._untag(key, entry.tags)

    def _untag(self, key: Hashable, tags: tuple[Hashable, ...]) -> None:
        for tag in tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[tag]


class CacheGroup:
    """Several caches that hear the same changes and go on and off together (the check
    answers' and the service keys', which have staleness bounds of their own)."""

    def __init__(self, *caches: CheckCache) -> None:
        self._caches = caches

    def enable(self) -> None:
        """Enable every cache (each from empty)."""
        for cache in self._caches:
            cache.enable()

    def disable(self) -> None:
        """Disable and empty every cache."""
        for cache in self._caches:
            cache.disable()

    def apply(self, change: Change, revision: str) -> None:
        """Apply ``change`` to every cache."""
        for cache in self._caches:
            cache.apply(change, revision)
