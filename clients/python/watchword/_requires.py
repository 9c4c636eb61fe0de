"""Access control for the RPCs of *your* gRPC service, checked with Watchword.

The auth module's ``requires(condition, otherwise)`` and ``RequirePipe``, for a
``grpc.aio`` service that calls Watchword. The end user's session token comes from the
incoming metadata (``authorization: Bearer <session token>`` unless configured
otherwise)::

    from watchword import (
        AsyncClient, RequireInterceptor, configure, has_membership, has_permission, is_logged,
        requires,
    )

    configure(AsyncClient("watchword:50051", service_key=KEY))

    class Blog(blog_pb2_grpc.BlogServiceServicer):
        @requires(has_membership("admins"))
        async def DeletePost(self, request, context): ...

        @requires(has_permission("write", "Post", record=lambda request: request.post_id))
        async def EditPost(self, request, context): ...

    server = grpc.aio.server(
        interceptors=[
            RequireInterceptor(is_logged, exempt=["ListPosts"], services=["blog.v1.BlogService"])
        ]
    )

Outcomes, unless ``otherwise`` says differently: no session token, or one Watchword
calls invalid, aborts the call with UNAUTHENTICATED; a failed condition with
PERMISSION_DENIED. A condition that cannot be decided (:class:`Undecidable`: a
membership or permission asked without a valid session, or a question Watchword refuses,
such as a record id with a NUL) is refused the same way, never negated into a pass. When
Watchword cannot answer, the call fails with UNAVAILABLE; when a condition is broken
(it raises, or a function gives something other than a bool or a Condition), with
UNKNOWN, and the error is logged.
``otherwise`` may instead give the reply (the auth module's "return some content on
missing authorization") or another status.

Import these from the package (``from watchword import requires, configure, ...``): this
module is private, so that ``watchword.requires`` is only the decorator.
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextvars import ContextVar
from typing import Any, NoReturn, TypeAlias, TypeVar, cast

import grpc
from google.protobuf.message import Message

from watchword._conditions import (
    Condition,
    ConditionLike,
    Denial,
    Record,
    RequireContext,
    Undecidable,
    as_condition,
    has_membership,
    has_permission,
    is_logged,
)
from watchword._guard import CheckFailed, Guard, configure, guard_or_default

__all__ = [
    "Condition",
    "ConditionLike",
    "Denial",
    "Guard",
    "Otherwise",
    "Record",
    "RequireContext",
    "RequireInterceptor",
    "Undecidable",
    "configure",
    "current_context",
    "has_membership",
    "has_permission",
    "is_logged",
    "requires",
]

# The name it had as the public module watchword.requires: logging setups name it.
_log = logging.getLogger("watchword.requires")

OtherwiseResult: TypeAlias = "Message | grpc.StatusCode | tuple[grpc.StatusCode, str] | None"
Otherwise: TypeAlias = (
    "grpc.StatusCode | tuple[grpc.StatusCode, str] "
    "| Callable[[RequireContext], OtherwiseResult | Awaitable[OtherwiseResult]]"
)
"""What a refused call gets instead of the default status; see :func:`requires`."""
F = TypeVar("F", bound=Callable[..., Any])

_UNAVAILABLE = "the authorization service is unavailable; try again later"
_BROKEN = "the authorization check failed"

_current: ContextVar[RequireContext | None] = ContextVar("watchword_requires", default=None)


def current_context() -> RequireContext:
    """The :class:`RequireContext` of the call being served, inside a method protected
    by :func:`requires` or :class:`RequireInterceptor`: ``await current_context().user()``
    gives the user without asking Watchword again when a check already did.

    Raises:
        LookupError: Outside a protected call.
    """
    ctx = _current.get()
    if ctx is None:
        raise LookupError("not inside a call protected by watchword.requires")
    return ctx


class _Rule:
    """A condition with what to do when it fails, applied to one RPC."""

    def __init__(
        self, condition: Condition, otherwise: Otherwise | None, guard: Guard | None, method: str
    ) -> None:
        self.condition = condition
        self.otherwise = otherwise
        self.guard = guard
        self.method = method

    def context(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> RequireContext:
        # A decorated method under RequireInterceptor shares the interceptor's context
        # (and guard, unless given its own), so a user fetched once is not fetched again.
        # A protected method called from another one, with a request of its own, gets a
        # context of its own: its conditions must read its request, not the outer one.
        outer = _current.get()
        if outer is not None and outer.context is context and self.guard in (None, outer.guard):
            if outer.request is request:
                return outer
            return outer._for_request(request, self.method)
        return RequireContext(guard_or_default(self.guard), request, context, self.method)

    async def admit(self, ctx: RequireContext) -> Message | None:
        """``None`` when the call may proceed, else the reply to send; or aborts."""
        try:
            allowed = await self.condition.check(ctx)
        except CheckFailed as error:
            _log.warning("cannot check %r for %s: %s", self.condition, ctx.method, error)
            await _abort(ctx, grpc.StatusCode.UNAVAILABLE, _UNAVAILABLE)
        except Undecidable as error:
            # Neither yes nor no: refused, as a failed condition is (never admitted).
            _log.info("%r undecided for %s: %s", self.condition, ctx.method, error)
            allowed = False
        except grpc.aio.AbortError:
            raise  # a condition that aborted the call itself
        except Exception:
            # A broken condition (e.g. a function that returned a coroutine or an object)
            # is a programming error: loud in the log, and the call is never admitted.
            _log.exception("the condition %r for %s failed", self.condition, ctx.method)
            await _abort(ctx, grpc.StatusCode.UNKNOWN, _BROKEN)
        if allowed:
            return None
        denial = ctx.denial = _denial(ctx)
        otherwise = self.otherwise
        result: Any = otherwise(ctx) if callable(otherwise) else otherwise
        if inspect.isawaitable(result):
            result = await result
        if result is None:
            await _abort(ctx, denial.code, denial.message)
        if isinstance(result, grpc.StatusCode):
            await _abort(ctx, result, denial.message)
        if isinstance(result, tuple):
            await _abort(ctx, *result)
        if isinstance(result, Message):
            return result
        raise TypeError(
            f"otherwise for {ctx.method} gave {result!r}: expected a response message, "
            "a grpc.StatusCode, a (code, message) pair or None"
        )


def _denial(ctx: RequireContext) -> Denial:
    guard = ctx.guard
    if ctx.token is None:
        where = f"{guard.header}: {guard.scheme} <token>" if guard.scheme else guard.header
        return Denial(
            grpc.StatusCode.UNAUTHENTICATED,
            f"login required: send the session token as '{where}' metadata",
        )
    if ctx.session_invalid:
        return Denial(
            grpc.StatusCode.UNAUTHENTICATED, "the session is invalid or expired: log in again"
        )
    return Denial(grpc.StatusCode.PERMISSION_DENIED, f"permission denied for {ctx.method}")


async def _abort(ctx: RequireContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await ctx.context.abort(code, message)
    raise AssertionError("ServicerContext.abort returned")  # pragma: no cover


# Handler wrappers. grpc.aio tells coroutine handlers from async generators by their
# function type, so each kind of handler gets a wrapper of its own kind. They take the
# request and context as the last two arguments, so they fit bound methods, functions
# and handlers alike.


def _unary(inner: Callable[..., Any], rule: _Rule) -> Callable[..., Awaitable[Any]]:
    async def guarded(*args: Any) -> Any:
        ctx = rule.context(args[-2], args[-1])
        reply = await rule.admit(ctx)
        if reply is not None:
            return reply
        outer = _current.set(ctx)
        try:
            result = inner(*args)
            return await result if inspect.isawaitable(result) else result
        finally:
            _current.reset(outer)

    return guarded


def _writer(inner: Callable[..., Awaitable[None]], rule: _Rule) -> Callable[..., Awaitable[None]]:
    """For streaming handlers that send with ``context.write``."""

    async def guarded(*args: Any) -> None:
        ctx = rule.context(args[-2], args[-1])
        reply = await rule.admit(ctx)
        if reply is not None:
            await ctx.context.write(reply)
            return
        outer = _current.set(ctx)
        try:
            await inner(*args)
        finally:
            _current.reset(outer)

    return guarded


def _streaming(inner: Callable[..., Any], rule: _Rule) -> Callable[..., AsyncIterator[Any]]:
    """For streaming handlers that return an async (or plain) iterator."""

    async def guarded(*args: Any) -> AsyncIterator[Any]:
        ctx = rule.context(args[-2], args[-1])
        reply = await rule.admit(ctx)
        if reply is not None:
            yield reply
            return
        outer = _current.get()
        _current.set(ctx)
        try:
            responses = inner(*args)
            if hasattr(responses, "__aiter__"):
                async for response in responses:
                    yield response
            else:
                for response in responses:
                    yield response
        finally:
            # set(), not reset(): an abandoned generator may be closed in another context.
            _current.set(outer)

    return guarded


def requires(
    condition: ConditionLike,
    otherwise: Otherwise | None = None,
    *,
    guard: Guard | None = None,
) -> Callable[[F], F]:
    """Protect one servicer method: a coroutine, or an async generator for server streams.

    (A server-streaming coroutine that sends with ``context.write`` looks like a unary
    method from here, so an ``otherwise`` reply would be lost: make it an async
    generator, or protect it with :class:`RequireInterceptor`, which can tell.)

    Args:
        condition: :data:`is_logged`, :func:`has_membership`, :func:`has_permission`, a
            function of a :class:`RequireContext` (sync or async), or a combination.
        otherwise: What a refused call gets instead of the default status: a
            ``grpc.StatusCode`` or ``(code, message)`` to abort with, or a function of
            the :class:`RequireContext` (sync or async; ``ctx.denial`` tells why) that
            returns a response message to send as the reply (on a server stream, as its
            only message), a status or pair to abort with, or ``None`` for the default.
        guard: The :class:`Guard` to use. By default, the interceptor's when the call
            passed a :class:`RequireInterceptor`, else the one set by :func:`configure`.

    Without ``otherwise``, a call with no valid session aborts with UNAUTHENTICATED and
    one that fails the condition with PERMISSION_DENIED. When Watchword cannot answer,
    the call aborts with UNAVAILABLE (``otherwise`` is not consulted).
    """
    checked = as_condition(condition)

    def decorate(method: F) -> F:
        rule = _Rule(checked, otherwise, guard, method.__name__)
        wrapped: Callable[..., Any]
        if inspect.isasyncgenfunction(method):
            wrapped = _streaming(method, rule)
        elif inspect.iscoroutinefunction(method):
            wrapped = _unary(method, rule)
        else:
            raise TypeError(
                f"requires protects async methods; {method.__name__} is neither a "
                "coroutine function nor an async generator function"
            )
        return cast(F, functools.wraps(method)(wrapped))

    return decorate


class RequireInterceptor(grpc.aio.ServerInterceptor):
    """The auth module's ``RequirePipe``: one condition for every RPC of a service.

    Args:
        condition: As for :func:`requires`.
        otherwise: As for :func:`requires`.
        guard: The :class:`Guard` to use; the one set by :func:`configure` by default.
        exempt: RPCs left open, by full path (``"/blog.v1.BlogService/ListPosts"``)
            or by bare name (``"ListPosts"``). A bare name opens the method of that name
            on *every* protected service, so give it together with ``services``; without
            ``services`` a bare name warns (use the full path instead).
        services: Full names of the services to protect (``"blog.v1.BlogService"``);
            ``None`` protects every service on the server, health and reflection
            included, so name yours when the server also serves those.

    Every kind of RPC is protected; for client-streaming RPCs ``ctx.request`` is the
    request iterator. Methods may also carry :func:`requires` for stricter checks; both
    then share one :class:`RequireContext` per call.

    Handlers must be async (coroutine or async generator functions), as with
    :func:`requires`: a protected call to a blocking handler fails (the interceptor
    raises TypeError, logged by grpc) rather than run it unchecked.
    """

    def __init__(
        self,
        condition: ConditionLike,
        otherwise: Otherwise | None = None,
        *,
        guard: Guard | None = None,
        exempt: Collection[str] = (),
        services: Collection[str] | None = None,
    ) -> None:
        if isinstance(exempt, str) or isinstance(services, str):
            raise TypeError("exempt and services take collections of names, not one string")
        self._condition = as_condition(condition)
        self._otherwise = otherwise
        self._guard = guard
        self._exempt = frozenset(exempt)
        self._services = None if services is None else frozenset(services)
        bare = sorted(name for name in self._exempt if not name.startswith("/"))
        if bare and self._services is None:
            warnings.warn(
                f"RequireInterceptor: exempt={bare!r} without services= leaves these methods "
                "open on every service of the server; name the services, or exempt by full "
                "path ('/package.Service/Method')",
                UserWarning,
                stacklevel=2,
            )
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        path = handler_call_details.method
        if handler is None or not self._protects(path):
            return handler
        known = self._wrapped.get(path)
        if known is not None and known[0] is handler:
            return cast("grpc.RpcMethodHandler[Any, Any]", known[1])
        wrapped = self._wrap(handler, path.rpartition("/")[2])
        self._wrapped[path] = (handler, wrapped)
        return wrapped

    def _protects(self, path: str) -> bool:
        service, _, name = path.lstrip("/").partition("/")
        if self._services is not None and service not in self._services:
            return False
        return name not in self._exempt and path not in self._exempt

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], name: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        rule = _Rule(self._condition, self._otherwise, self._guard, name)
        _refuse_blocking(handler, name)
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, rule), **serializers
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary, rule), **serializers
            )
        streams: Sequence[tuple[Any, Callable[..., grpc.RpcMethodHandler[Any, Any]]]] = (
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
        )
        for inner, make in streams:
            if inner is not None:
                kind = _writer if inspect.iscoroutinefunction(inner) else _streaming
                return make(kind(inner, rule), **serializers)
        raise TypeError(f"RequireInterceptor cannot wrap the handler of {name}")


def _refuse_blocking(handler: grpc.RpcMethodHandler[Any, Any], name: str) -> None:
    """Fail closed on a blocking handler: run on the event loop by a coroutine wrapper, its
    ``context.abort()`` would return an un-awaited coroutine and the handler carry on."""
    for behavior in (
        handler.unary_unary,
        handler.stream_unary,
        handler.unary_stream,
        handler.stream_stream,
    ):
        if behavior is None:
            continue
        if inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior):
            return
        raise TypeError(
            f"RequireInterceptor protects async handlers; the handler of {name} ({behavior!r}) "
            "is neither a coroutine function nor an async generator function"
        )
