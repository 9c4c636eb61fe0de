"""The asyncio client's channel, call plumbing and event stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio
from google.protobuf import message

from watchword._base import CallMetadata, CallOptions, Timeout
from watchword.auth.v1 import (
    access_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    auth_service_pb2_grpc,
    resources_pb2,
)
from watchword.errors import from_rpc_error

__all__ = ["AsyncEventStream", "AsyncTransport"]

_Request = TypeVar("_Request", bound=message.Message)
_Response = TypeVar("_Response", bound=message.Message)


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
    time (before ``asyncio.run``) must not make it there.
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
    ) -> None:
        self._target = target
        self._credentials = credentials
        self._channel_options = list(options)
        self._owns_channel = channel is None
        self._channel = channel
        self._stubs = None if channel is None else _Stubs(channel)
        self._closed = False
        self._options = CallOptions(service_key=service_key, timeout=timeout, metadata=metadata)

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying channel (for health checks or other services); opened if need be."""
        return self._open()[0]

    def _open(self) -> tuple[grpc.aio.Channel, _Stubs]:
        if self._closed:
            raise RuntimeError("this Watchword client is closed")
        if self._channel is None or self._stubs is None:
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self._target, self._credentials, options=self._channel_options
                )
            else:
                self._channel = grpc.aio.insecure_channel(
                    self._target, options=self._channel_options
                )
            self._stubs = _Stubs(self._channel)
        return self._channel, self._stubs

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
        """Close the channel, unless it was passed in (then its owner closes it)."""
        self._closed = True
        if self._owns_channel and self._channel is not None:
            await self._channel.close()

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

    def _watch(
        self,
        request: admin_service_pb2.WatchEventsRequest,
        timeout: Timeout,
        metadata: CallMetadata,
    ) -> AsyncEventStream:
        call = self._admin.WatchEvents(
            request,
            timeout=self._options.timeout_for(timeout),
            metadata=self._options.metadata_for(metadata),
        )
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
        except asyncio.CancelledError:
            task = asyncio.current_task()
            # Our own cancel() while waiting ends the stream; the task's cancellation does not.
            if self._cancelled and (task is None or not task.cancelling()):
                raise StopAsyncIteration from None
            raise
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
