"""Wraps every RPC of a servicer: the service key is checked first where the service needs
one, domain errors become rich statuses, switched-off RPCs answer UNIMPLEMENTED, and
nothing unexpected leaks its text to the caller."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from watchword_server.config import Messages
from watchword_server.model.errors import (
    DependencyUnavailable,
    DomainError,
    FieldViolation,
    HookFailed,
    HookRefused,
    InvalidArgument,
    RpcDisabled,
    RpcUnimplemented,
)
from watchword_server.storage.db import is_unreachable
from watchword_server.transport.errors import hook_status, to_status
from watchword_server.transport.registration import Undecodable
from watchword_server.transport.rpc_observer import refusal_reason
from watchword_server.transport.service_key_check import ServiceKeyCheck, current_caller

__all__ = ["wrap_servicer"]

_log = logging.getLogger(__name__)

# How often a quiet stream re-checks its caller's key (a revoked key ends it this soon).
_STREAM_KEY_RECHECK = 0.5

S = TypeVar("S")
UnaryMethod = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamMethod = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def wrap_servicer(
    servicer: S,
    service: ServiceDescriptor,
    *,
    disabled: Collection[str],
    messages: Messages,
    key_check: ServiceKeyCheck | None = None,
    publish_caller: bool = False,
) -> S:
    """A copy of ``servicer`` (sharing its state) with every RPC of ``service`` wrapped.

    ``servicer`` itself is left as it was, so one servicer can be wrapped twice, each
    wrapping reading its own methods (the key gate serves one with the key check and one
    without), and never a wrapping of a wrapping.

    RPCs its class does not implement (left to the generated base) answer UNIMPLEMENTED
    ``RPC_UNIMPLEMENTED``; those named in ``disabled`` (the deployment's
    ``disabled_rpcs``) answer UNIMPLEMENTED ``RPC_DISABLED``. With ``key_check``, every
    RPC first requires a service key (a switched-off one too, so that a caller without a
    key learns nothing about the deployment); with ``publish_caller`` too, a unary RPC
    sees its caller in ``current_caller``.
    """
    wrapped_servicer = copy.copy(servicer)
    for method in service.methods:
        name, is_stream = method.name, method.server_streaming
        inner: Any
        if name in disabled:
            inner = _refusing(RpcDisabled, is_stream)
        elif _only_generated(type(servicer), name):
            inner = _refusing(RpcUnimplemented, is_stream)
        else:
            inner = getattr(servicer, name)
        wrapped = (
            _wrap_stream(inner, messages, key_check)
            if is_stream
            else _wrap_unary(inner, messages, key_check, publish_caller=publish_caller)
        )
        setattr(wrapped_servicer, name, wrapped)
    return wrapped_servicer


def _only_generated(servicer_class: object, name: str) -> bool:
    # The generated base defines every RPC (raising NotImplementedError); ours override them.
    for klass in getattr(servicer_class, "__mro__", ()):
        if name in vars(klass):
            return str(klass.__module__).endswith("_pb2_grpc")
    return True


def _refusing(error: type[DomainError], streaming: bool) -> Any:
    if streaming:

        async def refuse_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            raise error()
            yield  # pragma: no cover - makes this an async generator

        return refuse_stream

    async def refuse(request: Any, context: Any) -> Any:
        raise error()

    return refuse


async def _while_key_holds(
    responses: AsyncIterator[Any],
    key_check: ServiceKeyCheck,
    context: grpc.aio.ServicerContext[Any, Any],
) -> AsyncIterator[Any]:
    """``responses`` for as long as the caller's key is good: checked before each one and
    at least every ``_STREAM_KEY_RECHECK`` seconds while none comes, so a revoked key ends
    a quiet stream too (with the key's error)."""
    iterator = aiter(responses)
    upcoming: asyncio.Future[Any] | None = None
    try:
        while True:
            if upcoming is None:
                upcoming = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({upcoming}, timeout=_STREAM_KEY_RECHECK)
            if key_check.known(context) is None:
                await key_check(context)  # raises when the key is gone
            if not done:
                continue
            finished, upcoming = upcoming, None
            try:
                response = finished.result()
            except StopAsyncIteration:
                return
            yield response
    finally:
        if upcoming is not None:
            upcoming.cancel()
            with contextlib.suppress(BaseException):
                await upcoming
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()


_UNREACHABLE_LOG_EVERY = 10.0
_last_unreachable_log = -_UNREACHABLE_LOG_EVERY


async def _fail(
    context: grpc.aio.ServicerContext[Any, Any],
    error: Exception,
    method: object,
    messages: Messages,
) -> None:
    # Ends the call for ``error``: a domain error with its own status, a hook's refusal or
    # failure with its (see hook_status); UNAVAILABLE with a
    # retry delay when the database cannot be reached (logged at most every 10 s, since an
    # outage fails every call); INTERNAL, logged with its traceback, for anything else.
    global _last_unreachable_log
    name = getattr(method, "__name__", method)
    if not isinstance(error, DependencyUnavailable) and is_unreachable(error):
        error = DependencyUnavailable(str(error))
    if isinstance(error, DependencyUnavailable):
        now = time.monotonic()
        if now - _last_unreachable_log >= _UNREACHABLE_LOG_EVERY:
            _last_unreachable_log = now
            _log.warning("%s: %s", name, error.detail or error)
    elif isinstance(error, HookRefused | HookFailed):
        # Counted under one name: an application's reasons are not bounded label values.
        refusal_reason("HOOK_REFUSED" if isinstance(error, HookRefused) else "HOOK_FAILED")
        await _abort(context, hook_status(error, messages))
    elif not isinstance(error, DomainError):
        _log.error("unexpected failure in %s", name, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    assert isinstance(error, DomainError)  # noqa: S101 - narrowed above
    refusal_reason(error.reason.value)
    await _abort(context, to_status(error, messages))


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> None:
    set_already = context.trailing_metadata()
    if not set_already:
        await context.abort_with_status(status)
    # What the call set already (its request id) goes out beside the status's details.
    await context.abort(
        status.code,
        status.details,
        trailing_metadata=(*set_already, *status.trailing_metadata),
    )


def _refuse_undecodable(request: Undecodable) -> None:
    # After the key check: a caller without a key learns nothing, not even that its
    # body was wrong.
    raise InvalidArgument(
        [FieldViolation("request", f"not a valid request message: {request.error}")]
    )


def _wrap_unary(
    method: UnaryMethod,
    messages: Messages,
    key_check: ServiceKeyCheck | None,
    *,
    publish_caller: bool,
) -> UnaryMethod:
    # Three shapes, so that a check (keyed, its caller unused) pays for no branch or
    # context variable it does not need: this wrapper runs on every call.
    if key_check is None:

        @functools.wraps(method)
        async def open_call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                if type(request) is Undecodable:
                    _refuse_undecodable(request)
                return await method(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure gets its status here
                await _fail(context, error, method, messages)

        return open_call

    if not publish_caller:

        @functools.wraps(method)
        async def keyed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                # A cached key answers without a suspension; only a miss awaits the database.
                key_check.known(context) or await key_check(context)
                if type(request) is Undecodable:
                    _refuse_undecodable(request)
                return await method(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:  # noqa: BLE001 - every failure gets its status here
                await _fail(context, error, method, messages)

        return keyed

    @functools.wraps(method)
    async def keyed_with_caller(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            caller = key_check.known(context) or await key_check(context)
            if type(request) is Undecodable:
                _refuse_undecodable(request)
            token = current_caller.set(caller)
            try:
                return await method(request, context)
            finally:
                current_caller.reset(token)
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure gets its status here
            await _fail(context, error, method, messages)

    return keyed_with_caller


def _wrap_stream(
    method: StreamMethod, messages: Messages, key_check: ServiceKeyCheck | None
) -> StreamMethod:
    @functools.wraps(method)
    async def guarded(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            # Streams write nothing on the caller's behalf, so they need no current_caller
            # (and a context variable cannot be reset safely across an async generator).
            if key_check is not None and key_check.known(context) is None:
                await key_check(context)
            if type(request) is Undecodable:
                _refuse_undecodable(request)
            responses = method(request, context)
            if key_check is not None:
                responses = _while_key_holds(responses, key_check, context)
            async for response in responses:
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure gets its status here
            await _fail(context, error, method, messages)

    return guarded
