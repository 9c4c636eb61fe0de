"""What every RPC leaves behind, whichever service answers it (ours and health; not
reflection's bidirectional stream): the go-grpc-prometheus series, and with the access
log on, one line and a request id. And what the calls of AuthService and AdminService need
before they run: the client's address (``transport/client_address.py``), set here once
rather than worked out by each servicer.

Handlers are wrapped once, when a service is added (``transport/registration.py``), not
per call: an interceptor would be one more coroutine and handler lookup on every call.
With metrics and the access log off (the defaults), only the addressed services' handlers
are wrapped, and only to set the address.

The access log line (logger ``watchword.rpc``, at INFO) holds the method, status code,
duration, peer, request id, and the service key's id and the user concerned where the
call names them; never a request's or response's contents, so no password, token, key or
mailed link can reach it. The request id is the caller's ``x-request-id`` (printable, at
most 128 characters) or one made here, and goes back in the trailing metadata.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, TypeAlias, cast

import grpc

from watchword_server.domain.access.service_keys import Scope, ServiceKeys
from watchword_server.model.errors import DomainError
from watchword_server.runtime.metrics import MethodMetrics, RpcMetrics
from watchword_server.transport.client_address import ClientAddresses

__all__ = ["REQUEST_ID", "RpcObserver", "refusal_reason"]

REQUEST_ID = "x-request-id"
_MAX_REQUEST_ID = 128

_log = logging.getLogger("watchword.rpc")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class _Refusal:
    """Where the RPC wrapping leaves the ErrorInfo reason of the error a call ends with."""

    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason = ""


# Each call runs in a task of its own, so what is set here stays with the call.
_current: contextvars.ContextVar[_Refusal | None] = contextvars.ContextVar(
    "watchword_refusal", default=None
)


def refusal_reason(reason: str) -> None:
    """Say (from the RPC wrapping) that the running call ends with ErrorInfo ``reason``."""
    refusal = _current.get()
    if refusal is not None:
        refusal.reason = reason


class RpcObserver:
    """Wraps method handlers to count, time and (optionally) log every call.

    Args:
        metrics: The per-RPC series, or None for none.
        access_log: Write one line per call and answer with a request id.
        keys: Whose ids the access log gives for a call's ``authorization`` (cached keys
            only: a log line never waits for the database).
        addresses: Tells each call's client address, for ``addressed``.
        addressed: The services (full names) whose calls have their client address set
            before they run (``client_address.client_ip()``).
    """

    def __init__(
        self,
        metrics: RpcMetrics | None,
        *,
        access_log: bool,
        keys: ServiceKeys | None = None,
        addresses: ClientAddresses | None = None,
        addressed: Collection[str] = (),
    ) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._keys = keys
        self._addresses = addresses
        self._addressed = frozenset(addressed) if addresses is not None else frozenset()
        # Request ids made here: unique per process start, cheap to make.
        self._prefix = os.urandom(4).hex()
        self._numbers = itertools.count(1)

    @property
    def active(self) -> bool:
        """Whether wrapping does anything."""
        return self._metrics is not None or self._access_log

    def wrap(self, full_method: str, handler: Handler) -> Handler:
        """``handler`` of ``full_method`` (``/package.Service/Method``), observed."""
        _, service, method = full_method.split("/", 2)
        addresses = self._addresses if service in self._addressed else None
        if not self.active and addresses is None:
            return handler
        if handler.unary_unary is not None:
            behavior: Callable[..., Any] = handler.unary_unary
            if self.active:
                series = self._series("unary", service, method)
                behavior = self._unary(behavior, full_method, series, addresses)
            elif addresses is not None:
                behavior = _addressed_unary(behavior, addresses)
            return grpc.unary_unary_rpc_method_handler(
                behavior,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            streaming: Callable[..., AsyncIterator[Any]] = cast(Any, handler.unary_stream)
            if self.active:
                series = self._series("server_stream", service, method)
                streaming = self._stream(streaming, full_method, series, addresses)
            elif addresses is not None:
                streaming = _addressed_stream(streaming, addresses)
            return grpc.unary_stream_rpc_method_handler(
                streaming,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in the contract

    def _series(self, grpc_type: str, service: str, method: str) -> MethodMetrics | None:
        return None if self._metrics is None else self._metrics.method(grpc_type, service, method)

    def _unary(
        self,
        behavior: Callable[..., Any],
        full_method: str,
        series: MethodMetrics | None,
        addresses: ClientAddresses | None,
    ) -> Callable[..., Any]:
        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            if series is not None:
                series.started.inc()
            if addresses is not None:
                addresses.set_for(context)
            request_id = self._request_id(context) if self._access_log else ""
            refusal = _Refusal()
            _current.set(refusal)
            code = "OK"
            response = None
            try:
                response = await behavior(request, context)
                return response
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except BaseException:
                code = "UNKNOWN"
                raise
            finally:
                self._done(
                    series,
                    full_method,
                    code,
                    refusal.reason,
                    started,
                    context,
                    request_id,
                    request,
                    response,
                )

        return observed

    def _stream(
        self,
        behavior: Callable[..., AsyncIterator[Any]],
        full_method: str,
        series: MethodMetrics | None,
        addresses: ClientAddresses | None,
    ) -> Callable[..., AsyncIterator[Any]]:
        async def observed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            started = time.perf_counter()
            if series is not None:
                series.started.inc()
            if addresses is not None:
                addresses.set_for(context)
            request_id = self._request_id(context) if self._access_log else ""
            refusal = _Refusal()  # a stream's refusals are not told (its context would leak)
            code = "OK"
            try:
                async for response in behavior(request, context):
                    yield response
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            except BaseException:
                code = "UNKNOWN"
                raise
            finally:
                self._done(
                    series,
                    full_method,
                    code,
                    refusal.reason,
                    started,
                    context,
                    request_id,
                    request,
                    None,
                )

        return observed

    def _request_id(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        given = ""
        for key, value in context.invocation_metadata() or ():
            if key == REQUEST_ID and isinstance(value, str):
                given = value
        if not given or len(given) > _MAX_REQUEST_ID or not given.isprintable():
            given = f"{self._prefix}-{next(self._numbers)}"
        context.set_trailing_metadata(((REQUEST_ID, given),))
        return given

    def _done(
        self,
        series: MethodMetrics | None,
        full_method: str,
        code: str,
        reason: str,
        started: float,
        context: grpc.aio.ServicerContext[Any, Any],
        request_id: str,
        request: Any,
        response: Any,
    ) -> None:
        elapsed = time.perf_counter() - started
        if series is not None:
            series.handled(code).inc()
            series.seconds.observe(elapsed)
            if reason:
                series.refused(reason)
        if self._access_log and _log.isEnabledFor(logging.INFO):
            _log.info(
                "%s %s %.1f ms",
                full_method,
                code,
                elapsed * 1000,
                extra={
                    "rpc": {
                        "method": full_method,
                        "code": code,
                        "reason": reason or None,
                        "duration_ms": round(elapsed * 1000, 3),
                        "peer": context.peer(),
                        "request_id": request_id,
                        "key_id": self._key_id(context),
                        "user_id": _user_id(request, response),
                    }
                },
            )

    def _key_id(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        if self._keys is None:
            return None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                try:
                    caller = self._keys.known(value, Scope.ACCESS)
                except DomainError:
                    return None
                return None if caller is None else str(caller.key_id)
        return None


def _addressed_unary(
    behavior: Callable[..., Any], addresses: ClientAddresses
) -> Callable[..., Any]:
    async def addressed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        addresses.set_for(context)
        return await behavior(request, context)

    return addressed


def _addressed_stream(
    behavior: Callable[..., AsyncIterator[Any]], addresses: ClientAddresses
) -> Callable[..., AsyncIterator[Any]]:
    async def addressed(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        addresses.set_for(context)
        async for response in behavior(request, context):
            yield response

    return addressed


def _code_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN"


def _user_id(request: Any, response: Any) -> str | None:
    # The user a call is about: named in the request, or the one a login answers with.
    # Ids only (a user id is no secret); never an e-mail address or any other field.
    named = getattr(request, "user_id", "")
    if isinstance(named, str) and named:
        return named[:64]
    user = getattr(response, "user", None)
    found = getattr(user, "id", "")
    return found if isinstance(found, str) and found else None
