"""Reading the audit log: ListEvents pages and WatchEvents streams."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from watchword_server.domain.common.lookups import parse_id
from watchword_server.domain.common.paging import PageTokenInvalid, PageTokens, page_size
from watchword_server.model.errors import UserNotFound
from watchword_server.model.records import EventKind, EventRecord
from watchword_server.storage.db import Database
from watchword_server.storage.repositories import events as event_rows

__all__ = ["EventFeed", "EventReader"]

# How long a page token keeps looking for an id passed uncommitted (a transaction open
# longer than this, and its event is missed by ListEvents; the audit log still has it),
# how far below a page's end it looks for them, and how many it carries at most.
_GAP_PATIENCE = 60.0
_GAP_WINDOW = 1000
_MAX_GAPS = 100


def _position(position: dict[str, Any] | None) -> tuple[int, dict[int, float]]:
    """The id a token resumes after, and the ids it still looks for (with when first
    seen missing)."""
    if position is None:
        return 0, {}
    after_id, gaps = position.get("id", 0), position.get("gaps", [])
    if not isinstance(after_id, int) or not isinstance(gaps, list):
        raise PageTokenInvalid()
    pending: dict[int, float] = {}
    for gap in gaps:
        if not (isinstance(gap, list) and len(gap) == 2 and isinstance(gap[0], int)):
            raise PageTokenInvalid()
        if not isinstance(gap[1], int | float):
            raise PageTokenInvalid()
        pending[gap[0]] = float(gap[1])
    return after_id, pending


class EventFeed(Protocol):
    """Events as every server process commits them (``runtime/event_stream.py``)."""

    def subscribe(
        self, kind: EventKind | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[EventRecord]]:
        """A subscription to events committed from now on (of ``kind``, or all).

        Raises ShuttingDown when the stream is not running; its iterator ends with
        StreamOverflowed when the subscriber fell too far behind.
        """
        ...


class EventReader:
    """Lists and streams events."""

    def __init__(self, database: Database, stream: EventFeed, pages: PageTokens) -> None:
        self._database = database
        self._stream = stream
        self._pages = pages

    async def list(
        self, *, user_id: str, kind: EventKind | None, size: int, token: str
    ) -> tuple[list[EventRecord], str]:
        """A page of events, oldest first, optionally of one user and one kind."""
        # Events outlive their users: an id is checked for form, not for existence.
        user = parse_id(user_id, UserNotFound) if user_id else None
        limit = page_size(size)
        scope = f"ListEvents:{user_id}:{kind.value if kind else ''}"
        after_id, pending = _position(self._pages.decode(scope, token))
        now = time.time()
        pending = {gap: seen for gap, seen in pending.items() if now - seen < _GAP_PATIENCE}
        async with self._database.connect() as conn:
            rows = await event_rows.list_events(
                conn,
                user_id=user,
                kind=kind,
                after_id=after_id,
                limit=limit + 1,
                also_ids=pending,
            )
            page, more = rows[:limit], len(rows) > limit
            if not more:
                return page, ""
            last = page[-1].id
            if not self._database.is_postgresql:
                # SQLite has one writer at a time: ids commit in order, none comes late.
                return page, self._pages.encode(scope, {"id": last})
            # On PostgreSQL a smaller id can commit after a larger one: the ids this page
            # passes without an event may still come, and the next page looks for them.
            found = {event.id for event in page}
            below = max(after_id, last - _GAP_WINDOW)
            for gap in await event_rows.missing_ids(conn, above=below, through=last):
                pending.setdefault(gap, now)
            pending = {gap: seen for gap, seen in pending.items() if gap not in found}
        gaps = sorted(pending.items())[-_MAX_GAPS:]
        next_token = self._pages.encode(scope, {"id": last, "gaps": gaps})
        return page, next_token

    @asynccontextmanager
    async def watch(self, kind: EventKind | None) -> AsyncIterator[AsyncIterator[EventRecord]]:
        """Subscribe to events written by any server process from now on.

        The subscription is live once the context is entered, so a caller can tell its
        client "you are subscribed" before the first event.
        """
        async with self._stream.subscribe(kind) as subscription:
            yield subscription
