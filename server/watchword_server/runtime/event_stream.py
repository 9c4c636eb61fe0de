"""Live audit events for watchers, from every server process that shares the database.

One ``EventStream`` per process runs one background task. On PostgreSQL that task holds a
dedicated connection that ``LISTEN``s on the channel ``insert_event`` notifies (PostgreSQL
delivers a notification when its transaction commits, never before and never after a
rollback); each notification, and a poll every ``poll_interval`` seconds as a safety net,
makes it read the events after the last one it has seen and hand them to every
subscriber's bounded queue. On SQLite, which has no notifications, it polls every 0.2 s.
The database is read only while someone is subscribed.

The id is the order. Ids are drawn when a row is inserted but become visible when its
transaction commits, so on PostgreSQL a smaller id can show up after a larger one has been
delivered. Ids skipped over are therefore remembered for a while (``_GAP_HORIZON``) and
looked up again on every read: an event that commits late is still delivered, just after
its successors. Ids of rolled-back inserts never show up and are forgotten in the end.

If the LISTEN connection drops, the task logs a warning, reconnects with backoff and reads
everything after the last id it delivered, so no event is lost; meanwhile it keeps reading
at each reconnection attempt. A subscriber that falls ``queue_size`` events behind is cut
off with ``StreamOverflowed`` instead of buffering without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from types import TracebackType
from typing import Self

from watchword_server.model.errors import ShuttingDown, StreamOverflowed
from watchword_server.model.records import EventKind, EventRecord
from watchword_server.storage.db import Database
from watchword_server.storage.listener import ListenerLost, NotificationListener
from watchword_server.storage.repositories import events as event_rows

__all__ = ["APPLICATION_NAME", "EventStream", "Subscription"]

_log = logging.getLogger(__name__)

APPLICATION_NAME = "watchword-events"
"""The ``application_name`` of the LISTEN connection, to find it in ``pg_stat_activity``."""

# SQLite has no notifications; this is the latency of the embedded server's watchers.
_SQLITE_POLL = 0.2
# Events read per query; a catch-up after a long outage reads in several batches.
_BATCH = 500
# How long (s) an id skipped over is looked for: longer than any transaction that inserts
# an event should stay open. An event committed later still, is missed by watchers.
_GAP_HORIZON = 60.0
# At most this many skipped ids are remembered (the oldest are dropped), to bound the
# lookup when a burst of inserts is rolled back.
_MAX_GAPS = 1000
# Reconnection backoff (s). The first pause also lets a restarting server come back.
_RECONNECT_FIRST = 0.5
_RECONNECT_MAX = 10.0


class Subscription:
    """Events committed after the subscription started, oldest first.

    Use it as ``async with stream.subscribe() as events: async for event in events: ...``.
    It starts when entered (or at the first ``__anext__`` if it is iterated without
    ``async with``; then call ``aclose()``). Iteration ends when the stream stops and raises
    ``StreamOverflowed`` after the queued events if the subscriber fell behind.

    Attributes:
        kind: Only events of this kind are delivered; ``None`` for all.
    """

    def __init__(self, stream: EventStream, kind: EventKind | None, queue_size: int) -> None:
        self.kind = kind
        self._stream = stream
        self._queue_size = queue_size
        # A deque bounded by hand rather than an asyncio.Queue: the end must still be
        # signalled when the queue is full.
        self._queue: deque[EventRecord] = deque()
        self._ready = asyncio.Event()
        self._started = False
        self._ended = False
        self._error: Exception | None = None

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> EventRecord:
        """The next event, waiting for it if need be.

        Raises:
            ShuttingDown: the stream is not running (on the first call only).
            StreamOverflowed: the subscriber fell behind; the events queued before that have
                been returned.
            StopAsyncIteration: the stream stopped or the subscription was closed.
        """
        if not self._started:
            await self._start()
        while not self._queue:
            if self._ended:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    async def aclose(self) -> None:
        """Stop receiving; iteration ends after the events already queued."""
        self._stream._leave(self)
        self._end(None)

    async def _start(self) -> None:
        if self._started:
            raise RuntimeError("a subscription can only be started once")
        self._started = True
        await self._stream._join(self)

    def _offer(self, event: EventRecord) -> bool:
        """Queue ``event`` unless the queue is full; False means the subscriber overflowed."""
        if self._ended:
            return True
        if len(self._queue) >= self._queue_size:
            return False
        self._queue.append(event)
        self._ready.set()
        return True

    def _end(self, error: Exception | None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._ready.set()


class EventStream:
    """Fans new audit events out to subscribers; one instance and one task per process.

    Args:
        database: The server's database; PostgreSQL is listened to, SQLite is polled.
        poll_interval: Seconds between reads on PostgreSQL when no notification came,
            a safety net for notifications that never arrived.
        queue_size: How many events a subscriber may fall behind before it is closed
            with ``StreamOverflowed``.
    """

    def __init__(
        self, database: Database, *, poll_interval: float = 2.0, queue_size: int = 1000
    ) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be positive")
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._database = database
        self._poll_interval = poll_interval
        self._queue_size = queue_size
        self._notifies = database.is_postgresql
        # A dict for a stable fan-out order; the values are unused.
        self._subscribers: dict[Subscription, None] = {}
        # One read-and-fan-out at a time, whether from the task or a joining subscriber.
        self._lock = asyncio.Lock()
        # The highest id delivered (or, while nobody listens, seen); ids skipped below it,
        # with the monotonic time at which to stop looking for them.
        self._position = 0
        self._gaps: dict[int, float] = {}
        # Whether _position is current enough to read on from: true while someone is
        # subscribed (reads move it) or while LISTEN runs (notifications move it).
        self._tracking = False
        self._listening = False
        self._running = False
        self._joined = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Remember the newest event id and start the background task.

        Raises:
            RuntimeError: the stream is already running.
            ListenerLost: PostgreSQL refused the LISTEN connection.
        """
        if self._task is not None:
            raise RuntimeError("the event stream is already running")
        listener = await self._connect() if self._notifies else None
        try:
            # After LISTEN, so every commit after this read is announced.
            async with self._database.connect() as db:
                self._position = await event_rows.last_event_id(db)
        except BaseException:
            if listener is not None:
                await listener.close()
            self._listening = False
            raise
        self._gaps.clear()
        self._tracking = self._listening
        self._running = True
        run = self._listen_forever(listener) if listener is not None else self._poll_forever()
        self._task = asyncio.create_task(run, name="watchword-events")

    async def stop(self) -> None:
        """End every open subscription (their iteration finishes) and the background task."""
        self._running = False
        for subscriber in list(self._subscribers):
            subscriber._end(None)
        self._subscribers.clear()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                _log.error("the event stream task had failed", exc_info=task.exception())
        self._tracking = self._listening = False

    def subscribe(self, kind: EventKind | None = None) -> Subscription:
        """A subscription to events (of ``kind``, if given) committed after it starts.

        Nothing happens until it is entered with ``async with`` (or iterated); entering
        raises ``ShuttingDown`` if the stream is not running.
        """
        return Subscription(self, kind, self._queue_size)

    # --- subscribers ------------------------------------------------------------------

    async def _join(self, subscriber: Subscription) -> None:
        async with self._lock:
            if not self._running:
                raise ShuttingDown("the event stream is not running")
            if self._tracking:
                # Events committed before now, but not read yet, go to the subscribers
                # already here and not to the newcomer.
                await self._read_new()
            else:
                # Nobody watched and nothing told us of new ids: skip to the newest.
                async with self._database.connect() as db:
                    self._position = await event_rows.last_event_id(db)
                self._gaps.clear()
                self._tracking = True
            if not self._running:
                raise ShuttingDown("the event stream is not running")
            self._subscribers[subscriber] = None
        self._joined.set()

    def _leave(self, subscriber: Subscription) -> None:
        self._subscribers.pop(subscriber, None)
        if not self._subscribers and not self._listening:
            # Nothing moves _position from now on; the next subscriber starts afresh.
            self._tracking = False

    # --- reading and fanning out ------------------------------------------------------

    async def _read_new(self) -> None:
        """Deliver the committed events not delivered yet; the caller holds ``_lock``."""
        async with self._database.connect() as db:
            now = time.monotonic()
            while self._gaps:
                oldest, give_up = next(iter(self._gaps.items()))
                if give_up > now:
                    break
                del self._gaps[oldest]
            if self._gaps:
                self._fan_out(await event_rows.events_with_ids(db, list(self._gaps)))
            while True:
                batch = await event_rows.events_after(
                    db, after_id=self._position, kind=None, limit=_BATCH
                )
                self._fan_out(batch)
                if len(batch) < _BATCH:
                    break

    async def _read_new_logged(self) -> None:
        if not self._subscribers:
            return
        try:
            async with self._lock:
                if self._subscribers:
                    await self._read_new()
        except Exception as exc:
            # The database may be briefly unreachable; the next read catches up.
            _log.warning("reading new events failed: %s", exc)

    def _fan_out(self, events: list[EventRecord]) -> None:
        # No await in here: a cancelled read either delivers a whole batch or none of it.
        now = time.monotonic()
        # A subscriber closed on overflow is dropped below but stays in this copy, where
        # _offer ignores it.
        subscribers = list(self._subscribers)
        for event in events:
            if not self._advance(event.id, now):
                continue
            for subscriber in subscribers:
                if subscriber.kind is not None and subscriber.kind is not event.kind:
                    continue
                if not subscriber._offer(event):
                    _log.warning(
                        "an event watcher fell %d events behind and was disconnected",
                        self._queue_size,
                    )
                    self._subscribers.pop(subscriber, None)
                    subscriber._end(
                        StreamOverflowed(f"more than {self._queue_size} events not yet read")
                    )

    def _advance(self, event_id: int, now: float) -> bool:
        """Note that ``event_id`` is committed; True if it is new (not delivered before)."""
        if event_id > self._position:
            # The ids in between are in flight or rolled back: look for them a while.
            for missing in range(max(self._position + 1, event_id - _MAX_GAPS), event_id):
                self._gaps[missing] = now + _GAP_HORIZON
            while len(self._gaps) > _MAX_GAPS:
                del self._gaps[next(iter(self._gaps))]
            self._position = event_id
            return True
        return self._gaps.pop(event_id, None) is not None

    # --- the background task ----------------------------------------------------------

    async def _poll_forever(self) -> None:
        while True:
            if not self._subscribers:
                self._joined.clear()
                await self._joined.wait()
            await asyncio.sleep(min(self._poll_interval, _SQLITE_POLL))
            await self._read_new_logged()

    async def _listen_forever(self, listener: NotificationListener | None) -> None:
        delay = _RECONNECT_FIRST
        try:
            while True:
                if listener is None:
                    try:
                        listener = await self._connect()
                    except ListenerLost as exc:
                        _log.warning(
                            "cannot reconnect to listen for events (%s); retrying in %.1f s",
                            exc,
                            delay,
                        )
                        # Watchers still get events, just at the pace of the retries.
                        await self._read_new_logged()
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, _RECONNECT_MAX)
                        continue
                    _log.info("listening for events again")
                    delay = _RECONNECT_FIRST
                    # What was announced during the outage went nowhere: read it now.
                    await self._read_new_logged()
                try:
                    await self._listen(listener)
                except ListenerLost as exc:
                    _log.warning(
                        "lost the connection that listens for events (%s); reconnecting in %.1f s",
                        exc,
                        delay,
                    )
                except Exception:
                    _log.exception("listening for events failed; reconnecting in %.1f s", delay)
                self._lost_listener()
                await listener.close()
                listener = None
                await asyncio.sleep(delay)
        finally:
            if listener is not None:
                await listener.close()
            self._listening = False

    async def _listen(self, listener: NotificationListener) -> None:
        while True:
            async for payload in listener.payloads(timeout=self._poll_interval):
                self._on_notify(payload)
            # After notifications, and after poll_interval without any, as a safety net.
            await self._read_new_logged()

    def _on_notify(self, payload: str) -> None:
        if self._subscribers or not self._tracking:
            # Subscribers: the read that follows delivers it. Not tracking: nothing to move.
            return
        try:
            event_id = int(payload)
        except ValueError:
            return
        # Nobody watches: keep the position current without reading the database.
        self._advance(event_id, time.monotonic())

    def _lost_listener(self) -> None:
        self._listening = False
        if not self._subscribers:
            # Notifications are missed from now on, so _position goes stale.
            self._tracking = False

    async def _connect(self) -> NotificationListener:
        listener = await NotificationListener.open(
            self._database, event_rows.NOTIFY_CHANNEL, application_name=APPLICATION_NAME
        )
        self._listening = True
        return listener
