"""The blocking client's channel, call plumbing and event stream."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf import message

from watchword._base import CallMetadata, CallOptions, Revisions, Timeout
from watchword.auth.v1 import (
    access_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    auth_service_pb2_grpc,
    resources_pb2,
)
from watchword.errors import from_rpc_error

__all__ = ["EventStream", "Transport"]

_Request = TypeVar("_Request", bound=message.Message)
_Response = TypeVar("_Response", bound=message.Message)

_CLOSED = "the client is closed"


def _closed_channel(error: ValueError) -> bool:
    # What grpc raises for a call on a closed channel (one passed in, closed by its owner):
    # "Cannot invoke RPC on closed channel!" or "Cannot invoke RPC: Channel closed!".
    text = str(error).lower()
    return "closed channel" in text or "channel closed" in text


class Transport:
    """One ``grpc`` (sync) channel with the three service stubs and the client's defaults."""

    def __init__(
        self,
        target: str,
        *,
        service_key: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        channel: grpc.Channel | None = None,
        timeout: float | None = 10.0,
        metadata: CallMetadata = (),
        options: Sequence[tuple[str, Any]] = (),
        read_your_writes: bool | float = True,
    ) -> None:
        self._revisions = Revisions(read_your_writes)  # first: it may refuse the value
        self._owns_channel = channel is None
        self._closed = False
        if channel is not None:
            self._channel = channel
        elif credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=list(options))
        else:
            self._channel = grpc.insecure_channel(target, options=list(options))
        self._options = CallOptions(service_key=service_key, timeout=timeout, metadata=metadata)
        self._auth = auth_service_pb2_grpc.AuthServiceStub(self._channel)
        self._access = access_service_pb2_grpc.AccessServiceStub(self._channel)
        self._admin = admin_service_pb2_grpc.AdminServiceStub(self._channel)

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel (for health checks or other services)."""
        return self._channel

    @property
    def last_revision(self) -> str:
        """The revision returned by this client's latest AdminService write (``""`` before
        the first): opaque, for ``min_revision`` (see ``read_your_writes``)."""
        return self._revisions.last

    def _note_revision(self, revision: str) -> None:
        self._revisions.note(revision)

    def _min_revision(self, explicit: str | None) -> str:
        return self._revisions.min_revision(explicit)

    def close(self) -> None:
        """Close the channel, unless it was passed in (then its owner closes it). Later
        calls raise RuntimeError."""
        self._closed = True
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        timeout: Timeout,
        metadata: CallMetadata,
    ) -> _Response:
        if self._closed:
            raise RuntimeError(_CLOSED)
        try:
            return method(
                request,
                timeout=self._options.timeout_for(timeout),
                metadata=self._options.metadata_for(metadata),
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from error
        except ValueError as error:
            if _closed_channel(error):
                raise RuntimeError(f"{_CLOSED}: its channel was closed") from error
            raise

    def _watch(
        self,
        request: admin_service_pb2.WatchEventsRequest,
        timeout: Timeout,
        metadata: CallMetadata,
    ) -> EventStream:
        if self._closed:
            raise RuntimeError(_CLOSED)
        try:
            call = self._admin.WatchEvents(
                request,
                timeout=self._options.timeout_for(timeout),
                metadata=self._options.metadata_for(metadata),
            )
        except ValueError as error:
            if _closed_channel(error):
                raise RuntimeError(f"{_CLOSED}: its channel was closed") from error
            raise
        return EventStream(call)


class EventStream(Iterator[resources_pb2.Event]):
    """The events of a running ``WatchEvents`` call, as an iterator.

    The call starts when the stream is created. Leave it with ``cancel()`` (from any
    thread) or by using the stream as a context manager::

        with client.watch_events(kind=resources_pb2.EVENT_KIND_LOGIN) as events:
            events.subscribed()
            for event in events:
                ...
    """

    def __init__(self, call: Iterator[admin_service_pb2.WatchEventsResponse]) -> None:
        # At run time the call is also a grpc.Call and a grpc.RpcError (a "rendezvous").
        self._call = call
        self._cancelled = False

    def subscribed(self) -> None:
        """Block until the server has subscribed: events written from now on will come.

        Raises:
            WatchwordError: The call failed before subscribing (e.g. ``Unauthenticated``).
        """
        call = self._call
        if isinstance(call, grpc.Call):
            call.initial_metadata()  # blocks until the headers, or the end of the call
            if not call.is_active() and not self._cancelled and isinstance(call, grpc.RpcError):
                if call.code() != grpc.StatusCode.OK:
                    raise from_rpc_error(call)

    def cancel(self) -> None:
        """End the call; iterating afterwards stops at once."""
        self._cancelled = True
        if isinstance(self._call, grpc.RpcContext):
            self._call.cancel()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> resources_pb2.Event:
        if self._cancelled:
            raise StopIteration
        try:
            return next(self._call).event
        except grpc.RpcError as error:
            if self._cancelled:  # cancel() from another thread while waiting
                raise StopIteration from None
            raise from_rpc_error(error) from error

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cancel()
