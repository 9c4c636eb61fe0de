"""The asyncio client's channel, call plumbing and event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf import message

from watchword._base import CallMetadata, CallOptions, Revisions, Timeout
from watchword.auth.v1 import (
    access_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    auth_service_pb2_grpc,
    resources_pb2,
)
from watchword.errors import Cancelled, from_rpc_error

__all__ = ["AsyncEventStream", "AsyncTransport"]

_Request = TypeVar("_Request", bound=message.Message)
_Response = TypeVar("_Response", bound=message.Message)

_CLOSED = "the client is closed"
_LOCALLY_CANCELLED = "the call was cancelled: the client was closed while it ran"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _not_cancelling() -> bool:
    """True when the current task is not being cancelled: a CancelledError then comes
    from grpc (the call was cancelled under us, e.g. by ``close()``), not from our caller."""
    task = asyncio.current_task()
    return task is None or task.cancelling() == 0


class _Stubs:
    """The three service stubs on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.auth = auth_service_pb2_grpc.AuthServiceStub(channel)
        self.access = access_service_pb2_grpc.AccessServiceStub(channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(channel)


class AsyncTransport:
    """One ``grpc.aio`` channel with the three service stubs and the client's defaults.

    The channel opens on first use rather than in ``__init__``: a ``grpc.aio`` channel
    belongs to the event loop that runs when it is made, so a client built at import
    time (before ``asyncio.run``) must not make it there. For the same reason a client
    used on another event loop (a second ``asyncio.run``) opens a new channel there, and
    closes the old one if its loop still runs; a channel passed in cannot be replaced, so
    using it on another loop raises RuntimeError.
    """

    def __init__(
        self,
        target: str,
        *,
        service_key: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.aio.Channel | None = None,
        timeout: float | None = 10.0,
        metadata: CallMetadata = (),
        options: Sequence[tuple[str, Any]] = (),
        read_your_writes: bool | float = True,
    ) -> None:
        self._target = target
        self._credentials = credentials
        self._channel_options = list(options)
        self._owns_channel = channel is None
        self._channel = channel
        self._stubs = None if channel is None else _Stubs(channel)
        # The loop the channel works on (grpc.aio keeps it, privately; else first use).
        loop = getattr(channel, "_loop", None)
        self._loop = loop if isinstance(loop, asyncio.AbstractEventLoop) else None
        self._closed = False
        self._options = CallOptions(service_key=service_key, timeout=timeout, metadata=metadata)
        self._revisions = Revisions(read_your_writes)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel (for health checks or other services); opened if need be."""
        return self._open()[0]

    @property
    def last_revision(self) -> str:
        """The revision returned by this client's latest AdminService write (``""`` before
        the first): opaque, for ``min_revision`` (see ``read_your_writes``)."""
        return self._revisions.last

    def _note_revision(self, revision: str) -> None:
        self._revisions.note(revision)

    def _min_revision(self, explicit: str | None) -> str:
        return self._revisions.min_revision(explicit)

    def _open(self) -> tuple[grpc.aio.Channel, _Stubs]:
        if self._closed:
            raise RuntimeError(_CLOSED)
        loop = _running_loop()
        if self._channel is not None and self._stubs is not None:
            if loop is None or self._loop is None or self._loop is loop:
                self._loop = self._loop or loop
                return self._channel, self._stubs
            if not self._owns_channel:
                raise RuntimeError(
                    "the channel given to this Watchword client belongs to another event "
                    "loop (grpc.aio channels work only on the loop they were made on): make "
                    "a channel and a client per event loop"
                )
            self._drop_channel(self._channel, self._loop)
        if self._credentials is not None:
            channel = grpc.aio.secure_channel(
                self._target, self._credentials, options=self._channel_options
            )
        else:
            channel = grpc.aio.insecure_channel(self._target, options=self._channel_options)
        self._channel, self._stubs, self._loop = channel, _Stubs(channel), loop
        return channel, self._stubs

    @staticmethod
    def _drop_channel(channel: grpc.aio.Channel, loop: asyncio.AbstractEventLoop) -> None:
        """Let go of a channel of another loop: closed there if that loop still runs (in
        another thread); else grpc closes it when it is collected."""
        if loop.is_running() and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(channel.close(), loop)

    @property
    def _auth(self) -> auth_service_pb2_grpc.AuthServiceAsyncStub:
        return self._open()[1].auth

    @property
    def _access(self) -> access_service_pb2_grpc.AccessServiceAsyncStub:
        return self._open()[1].access

    @property
    def _admin(self) -> admin_service_pb2_grpc.AdminServiceAsyncStub:
        return self._open()[1].admin

    async def close(self) -> None:
        """Close the channel, unless it was passed in (then its owner closes it). Calls
        in progress end with :class:`watchword.Cancelled`; later ones raise RuntimeError."""
        self._closed = True
        channel, loop = self._channel, self._loop
        if not self._owns_channel or channel is None:
            return
        if loop is None or loop is _running_loop():
            await channel.close()
        else:
            self._drop_channel(channel, loop)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        timeout: Timeout,
        metadata: CallMetadata,
    ) -> _Response:
        try:
            return await method(
                request,
                timeout=self._options.timeout_for(timeout),
                metadata=self._options.metadata_for(metadata),
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        except grpc.aio.UsageError as error:  # a channel passed in, closed by its owner
            raise RuntimeError(f"{_CLOSED}: its channel was closed") from error
        except asyncio.CancelledError as error:
            if _not_cancelling():
                raise Cancelled(_LOCALLY_CANCELLED) from error
            raise

    def _watch(
        self,
        request: admin_service_pb2.WatchEventsRequest,
        timeout: Timeout,
        metadata: CallMetadata,
    ) -> AsyncEventStream:
        try:
            call = self._admin.WatchEvents(
                request,
                timeout=self._options.timeout_for(timeout),
                metadata=self._options.metadata_for(metadata),
            )
        except grpc.aio.UsageError as error:  # a channel passed in, closed by its owner
            raise RuntimeError(f"{_CLOSED}: its channel was closed") from error
        return AsyncEventStream(call)


class AsyncEventStream(AsyncIterator[resources_pb2.Event]):
    """The events of a running ``WatchEvents`` call, as an async iterator.

    The call starts when the stream is created. Leave it with ``cancel()`` or by using
    the stream as an async context manager::

        async with client.watch_events(kind=resources_pb2.EVENT_KIND_LOGIN) as events:
            await events.subscribed()
            async for event in events:
                ...
    """

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall[
            admin_service_pb2.WatchEventsRequest, admin_service_pb2.WatchEventsResponse
        ],
    ) -> None:
        self._call = call
        self._responses = call.__aiter__()
        self._cancelled = False

    async def subscribed(self) -> None:
        """Wait until the server has subscribed: events written from now on will come.

        Raises:
            WatchwordError: The call failed before subscribing (e.g. ``Unauthenticated``).
        """
        await self._call.initial_metadata()
        if self._call.done() and not self._cancelled:
            code = await self._call.code()
            if code != grpc.StatusCode.OK:
                error = grpc.aio.AioRpcError(
                    code,
                    await self._call.initial_metadata(),
                    await self._call.trailing_metadata(),
                    await self._call.details(),
                )
                raise from_rpc_error(error) from error

    def cancel(self) -> None:
        """End the call; iterating afterwards stops at once."""
        self._cancelled = True
        self._call.cancel()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> resources_pb2.Event:
        if self._cancelled:
            raise StopAsyncIteration
        try:
            response = await self._responses.__anext__()
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        except asyncio.CancelledError as error:
            # The task's own cancellation goes on; our cancel() while waiting ends the
            # stream; anything else cancelled the call under us (the client was closed).
            if not _not_cancelling():
                raise
            if self._cancelled:
                raise StopAsyncIteration from None
            raise Cancelled(_LOCALLY_CANCELLED) from error
        return response.event

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()
