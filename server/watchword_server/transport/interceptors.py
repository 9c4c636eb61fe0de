"""The service-key check in front of AccessService and AdminService (and AuthService when
``auth_requires_key`` is set).

The check runs inside the RPC's own handler (the interceptor wraps the handler's behaviour),
so the caller it finds is visible to the servicer through ``current_caller``.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from watchword_server.config import Messages
from watchword_server.domain.errors import DomainError
from watchword_server.domain.service_keys import Caller, Scope, ServiceKeys
from watchword_server.transport.errors import to_status

__all__ = ["ServiceKeyInterceptor", "current_caller"]

_log = logging.getLogger(__name__)

current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "watchword_current_caller", default=None
)


class ServiceKeyInterceptor(grpc.aio.ServerInterceptor):
    """Requires a service key of a given scope on the listed services.

    Args:
        keys: where keys are checked.
        required: service full name (e.g. ``watchword.auth.v1.AdminService``) -> scope.
        messages: the configured texts for error details.
    """

    def __init__(
        self, keys: ServiceKeys, required: Mapping[str, Scope], messages: Messages
    ) -> None:
        self._keys = keys
        self._required = dict(required)
        self._messages = messages
        # Each method's handler, wrapped once: a check must not pay for building it per call.
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        method = handler_call_details.method or ""
        known = self._handlers.get(method)
        if known is not None:
            return known
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = self._wrap(handler, method)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        scope = self._required.get(method.lstrip("/").rpartition("/")[0])
        if scope is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard_unary(handler.unary_unary, scope),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._guard_stream(handler.unary_stream, scope),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # no client-streaming RPCs in the contract

    async def _caller(self, context: grpc.aio.ServicerContext[Any, Any], scope: Scope) -> Caller:
        authorization = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                authorization = value
        try:
            return await self._keys.authenticate(authorization, scope)
        except DomainError as error:
            await context.abort_with_status(to_status(error, self._messages))
            raise  # abort raises; this keeps type checkers informed
        except Exception:
            # The key store is unreachable: say so, never UNKNOWN with a traceback.
            _log.exception("the service key could not be checked")
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the service key cannot be checked")
            raise

    def _guard_unary(self, behaviour: Any, scope: Scope) -> Any:
        @functools.wraps(behaviour)
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = current_caller.set(await self._caller(context, scope))
            try:
                return await behaviour(request, context)
            finally:
                current_caller.reset(token)

        return guarded

    def _guard_stream(self, behaviour: Any, scope: Scope) -> Any:
        @functools.wraps(behaviour)
        async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            # Streams write nothing on the caller's behalf, so they need no current_caller
            # (and a context variable cannot be reset safely across an async generator).
            await self._caller(context, scope)
            async for response in behaviour(request, context):
                yield response

        return guarded
