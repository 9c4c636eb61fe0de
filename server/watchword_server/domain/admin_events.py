"""Reading the audit log: ListEvents pages and WatchEvents streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from watchword_server.domain.errors import ShuttingDown, StreamOverflowed, UserNotFound
from watchword_server.domain.event_stream import EventStream, StreamOverflow, StreamUnavailable
from watchword_server.domain.lookups import parse_id
from watchword_server.domain.paging import PageTokenInvalid, PageTokens, page_size, split_page
from watchword_server.domain.types import EventKind, EventRecord
from watchword_server.storage.db import Database
from watchword_server.storage.repositories import events as event_rows

__all__ = ["EventReader"]


class EventReader:
    """Lists and streams events."""

    def __init__(self, database: Database, stream: EventStream, pages: PageTokens) -> None:
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
        position = self._pages.decode(scope, token)
        after_id = 0
        if position is not None:
            after_id = position.get("id", 0)
            if not isinstance(after_id, int):
                raise PageTokenInvalid()
        async with self._database.connect() as conn:
            rows = await event_rows.list_events(
                conn, user_id=user, kind=kind, after_id=after_id, limit=limit + 1
            )
        return split_page(rows, limit, lambda last: self._pages.encode(scope, {"id": last.id}))

    @asynccontextmanager
    async def watch(self, kind: EventKind | None) -> AsyncIterator[AsyncIterator[EventRecord]]:
        """Subscribe to events written by any server process from now on.

        The subscription is live once the context is entered, so a caller can tell its
        client "you are subscribed" before the first event.
        """
        try:
            async with self._stream.subscribe(kind) as subscription:
                yield _translated(subscription)
        except StreamUnavailable:
            raise ShuttingDown() from None


async def _translated(events: AsyncIterator[EventRecord]) -> AsyncIterator[EventRecord]:
    try:
        async for event in events:
            yield event
    except StreamOverflow:
        raise StreamOverflowed() from None
