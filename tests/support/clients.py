"""Both Python clients behind one awaitable face, so one test body runs against each.

The blocking ``Client`` is generated from ``AsyncClient`` (tools/unasync_client.py); a test
written once against ``AsyncClient`` runs against both through a ``flavour`` fixture (see
``tests/e2e/test_python_client.py``), as authzed-py runs one body against its clients. A
blocking call must not run on the event loop that also serves the test server, so
``Threaded`` runs each call in a worker thread and awaits it: page iterators become async
iterators, everything else an awaitable method; plain attributes pass through.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, cast

from watchword import AsyncClient, Client
from watchword.auth.v1 import resources_pb2
from watchword.client import EventStream

__all__ = ["FLAVOURS", "Threaded", "open_client"]

FLAVOURS = ("asyncio", "blocking")
"""The clients a shared test body runs against."""

_END = object()


class Threaded:
    """A blocking ``Client`` that answers like an ``AsyncClient``."""

    def __init__(self, client: Client) -> None:
        self.blocking = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.blocking, name)
        if not callable(attribute):
            return attribute
        if name.startswith("iter_"):
            return functools.partial(self._iterate, attribute)
        if name == "watch_events":  # opening the stream does not block; using it does
            return lambda *args, **kwargs: _ThreadedStream(attribute(*args, **kwargs))

        @functools.wraps(attribute)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attribute, *args, **kwargs)

        return call

    async def _iterate(
        self, method: Callable[..., Iterator[Any]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        items = await asyncio.to_thread(method, *args, **kwargs)
        while (item := await asyncio.to_thread(next, items, _END)) is not _END:
            yield item

    async def close(self) -> None:
        await asyncio.to_thread(self.blocking.close)


class _ThreadedStream:
    """A blocking ``EventStream`` that answers like an ``AsyncEventStream``."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    async def subscribed(self) -> None:
        await asyncio.to_thread(self._stream.subscribed)

    def cancel(self) -> None:
        self._stream.cancel()

    def __aiter__(self) -> _ThreadedStream:
        return self

    async def __anext__(self) -> resources_pb2.Event:
        event = await asyncio.to_thread(next, self._stream, None)
        if event is None:
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> _ThreadedStream:
        await asyncio.to_thread(self._stream.__enter__)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._stream.__exit__, None, None, None)


async def open_client(flavour: str, address: str, **options: Any) -> AsyncClient:
    """A client of ``flavour`` (one of ``FLAVOURS``) for ``address``; close it when done."""
    if flavour == "asyncio":
        return AsyncClient(address, **options)
    # Typed as what it stands in for: the tests call it exactly as they call AsyncClient.
    blocking = await asyncio.to_thread(Client, address, **options)
    return cast(AsyncClient, Threaded(blocking))
