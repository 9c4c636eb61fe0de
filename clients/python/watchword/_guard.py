"""The guard behind ``watchword.requires``: finds the end user's session token in a
call's metadata and asks Watchword about it, optionally remembering the answers."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

import grpc

from watchword._check_cache import MISS, CheckCache
from watchword.auth.v1 import resources_pb2
from watchword.client import AsyncClient
from watchword.errors import WatchwordError

__all__ = ["CheckFailed", "Guard", "Undecidable", "configure", "guard_or_default"]

_log = logging.getLogger("watchword.requires")

T = TypeVar("T")

_SESSION_INVALID = "SESSION_INVALID"


class CheckFailed(Exception):
    """Watchword gave no usable answer: unreachable, overloaded, a wrong service key..."""


class Undecidable(Exception):
    """The question has no answer for this call: there is no valid session to ask about,
    or Watchword refused the question itself (INVALID_ARGUMENT, e.g. a record id taken
    from a hostile request).

    It is neither yes nor no: ``~`` does not turn it into yes, ``|`` and ``&`` settle
    without it when another part decides (``True | ?`` is allowed, ``False & ?`` is
    refused), and a call whose condition stays undecided is refused (UNAUTHENTICATED
    without a valid session, else PERMISSION_DENIED).
    """


_REFUSED = object()  # cached: Watchword refused the question (raises Undecidable)


class Guard:
    """Asks Watchword about the session token found in a call's metadata.

    Args:
        client: The Watchword client (a service key of scope ``access`` is enough).
        header: The metadata key that carries the end user's session token.
        scheme: The word before the token in that header (``"Bearer"``, compared
            case-insensitively); ``None`` or ``""`` when the header holds the bare token.
        cache_ttl: Seconds to remember each answer per (token, question), so repeated
            calls skip the round trip; ``None`` (the default) asks every time. A user who
            is blocked or logs out keeps the remembered answers for at most this long.
        cache_size: The most answers remembered.
        clock: Seconds from any fixed origin, for the cache (``time.monotonic``).

    The question methods answer ``None`` when the session is missing from Watchword
    (invalid, expired or revoked), raise :class:`Undecidable` when Watchword refuses the
    question (INVALID_ARGUMENT) and :class:`CheckFailed` when Watchword cannot answer.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        header: str = "authorization",
        scheme: str | None = "Bearer",
        cache_ttl: float | None = None,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.header = header.lower()  # gRPC metadata keys arrive lowercased.
        self.scheme = scheme or None
        self.cache_ttl = cache_ttl
        self._cache: CheckCache[tuple[bytes, tuple[str, ...]], Any] | None = (
            None if cache_ttl is None else CheckCache(cache_ttl, cache_size, clock)
        )

    def session_token(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
        """The session token in ``metadata`` (a call's invocation metadata), if any."""
        for key, value in metadata or ():
            if key.lower() != self.header or not isinstance(value, str):
                continue
            token = value.strip()
            if self.scheme is not None:
                scheme, _, token = token.partition(" ")
                if scheme.lower() != self.scheme.lower():
                    return None
                token = token.strip()
            return token or None
        return None

    def clear_cache(self) -> None:
        """Forget every remembered answer (nothing to do when the cache is off)."""
        if self._cache is not None:
            self._cache.clear()

    async def user(self, token: str) -> resources_pb2.User | None:
        """The session's user (Watchword's Introspect, which also slides the session)."""

        async def ask() -> resources_pb2.User | None:
            return (await self.client.introspect(session_token=token)).user

        return await self._answer(token, ("introspect",), ask)

    async def has_membership(self, token: str, group: str) -> bool | None:
        """Whether the session's user belongs to ``group``."""

        async def ask() -> bool | None:
            return await self.client.has_membership(group=group, session_token=token)

        return await self._answer(token, ("membership", group), ask)

    async def has_permission(
        self, token: str, name: str, table_name: str = "", record_id: str = ""
    ) -> bool | None:
        """Whether the session's user holds a permission (see HasPermission)."""

        async def ask() -> bool | None:
            return await self.client.has_permission(
                name=name, table_name=table_name, record_id=record_id, session_token=token
            )

        question = ("permission", name, table_name, record_id)
        return await self._answer(token, question, ask)

    async def _answer(
        self,
        token: str,
        question: tuple[str, ...],
        ask: Callable[[], Awaitable[T | None]],
    ) -> T | None:
        # Keyed on the token's digest, so the cache holds no usable credentials.
        key = (hashlib.sha256(token.encode()).digest(), question)
        if self._cache is not None:
            cached = self._cache.get(key)
            if cached is _REFUSED:
                raise Undecidable(f"Watchword refused the check {question[0]}")
            if cached is not MISS:
                return cast("T | None", cached)
        answer: Any
        try:
            answer = await ask()
        except WatchwordError as error:
            if error.code == grpc.StatusCode.UNAUTHENTICATED and error.reason == _SESSION_INVALID:
                answer = None
            elif error.code == grpc.StatusCode.INVALID_ARGUMENT:
                # Watchword refused the question itself (e.g. a record id taken from a
                # hostile request). Not "no": under ~ that would become "yes".
                _log.warning("Watchword refused the check %s: %s", question[0], error)
                if self._cache is not None:
                    self._cache.put(key, _REFUSED)
                raise Undecidable(f"Watchword refused the check {question[0]}: {error}") from error
            else:
                raise CheckFailed(str(error)) from error
        except grpc.RpcError as error:  # in case a raw error slips through the client
            raise CheckFailed(str(error)) from error
        if self._cache is not None:
            self._cache.put(key, answer)
        return cast("T | None", answer)


_default: Guard | None = None


def configure(
    client: AsyncClient,
    *,
    header: str = "authorization",
    scheme: str | None = "Bearer",
    cache_ttl: float | None = None,
    cache_size: int = 10_000,
    clock: Callable[[], float] = time.monotonic,
) -> Guard:
    """Set the default :class:`Guard`, used by ``requires`` and ``RequireInterceptor``
    when they are given none; returns it.

    The arguments are :class:`Guard`'s. The default is looked up at each call, so
    ``configure`` may run after the servicers are defined (at start-up, once the client
    exists).
    """
    global _default
    _default = Guard(
        client,
        header=header,
        scheme=scheme,
        cache_ttl=cache_ttl,
        cache_size=cache_size,
        clock=clock,
    )
    return _default


def guard_or_default(guard: Guard | None) -> Guard:
    """``guard``, or the default one when ``None``."""
    if guard is not None:
        return guard
    if _default is None:
        raise RuntimeError(
            "watchword.requires has no guard: call watchword.requires.configure(client) "
            "at start-up, or pass guard="
        )
    return _default
