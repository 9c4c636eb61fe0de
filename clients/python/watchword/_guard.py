"""The guard behind ``watchword.requires``: finds the end user's session token in a
call's metadata and asks Watchword about it, optionally remembering the answers.

Several questions about one call go out together, as one BatchCheck
(:meth:`Guard._answers`), when a condition combines them."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeAlias, TypeVar, cast

import grpc

from watchword._check_cache import MISS, CheckCache
from watchword._checks import MAX_BATCH_CHECKS, AnyCheck, MembershipCheck, PermissionCheck
from watchword.auth.v1 import resources_pb2
from watchword.client import AsyncClient
from watchword.errors import Unimplemented, WatchwordError

__all__ = [
    "CheckFailed",
    "Guard",
    "Outcome",
    "Question",
    "Undecidable",
    "configure",
    "guard_or_default",
    "membership_question",
    "permission_question",
]

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


Question: TypeAlias = tuple[str, ...]
"""A question about a session's user, and its cache key: ``("membership", group)``,
``("permission", name, table_name, record_id)`` or ``("introspect",)``."""

Outcome: TypeAlias = "bool | None | Undecidable | CheckFailed"
"""What a membership or permission question came to: the answer, ``None`` when the
session is invalid, or the exception that asking it raises."""


def membership_question(group: str) -> Question:
    """The question "is the session's user in ``group``"."""
    return ("membership", group)


def permission_question(name: str, table_name: str, record_id: str) -> Question:
    """The question "does the session's user hold this permission"."""
    return ("permission", name, table_name, record_id)


def _as_check(question: Question, token: str) -> AnyCheck:
    if question[0] == "membership":
        return MembershipCheck(question[1], session_token=token)
    _, name, table_name, record_id = question
    return PermissionCheck(name, table_name, record_id, session_token=token)


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
            is blocked or logs out keeps the remembered answers for at most this long;
            a write made through ``client`` itself (e.g. ``block_user``) makes the guard
            forget what it remembered before, so its own changes count at once.
        cache_size: The most answers remembered.
        clock: Seconds from any fixed origin, for the cache (``time.monotonic``).

    The question methods answer ``None`` when the session is missing from Watchword
    (invalid, expired or revoked), raise :class:`Undecidable` when Watchword refuses the
    question (INVALID_ARGUMENT) and :class:`CheckFailed` when Watchword cannot answer.
    When a condition needs several answers, they are asked in one BatchCheck (against a
    server without it, one by one).
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
        # Values are (the client's last_revision when asked, the answer).
        self._cache: CheckCache[tuple[bytes, Question], tuple[str, Any]] | None = (
            None if cache_ttl is None else CheckCache(cache_ttl, cache_size, clock)
        )
        self._batching = True  # until Watchword says it has no BatchCheck

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

        return await self._answer(token, membership_question(group), ask)

    async def has_permission(
        self, token: str, name: str, table_name: str = "", record_id: str = ""
    ) -> bool | None:
        """Whether the session's user holds a permission (see HasPermission)."""

        async def ask() -> bool | None:
            return await self.client.has_permission(
                name=name, table_name=table_name, record_id=record_id, session_token=token
            )

        question = permission_question(name, table_name, record_id)
        return await self._answer(token, question, ask)

    async def _answers(self, token: str, questions: Iterable[Question]) -> dict[Question, Outcome]:
        """The outcomes of several membership and permission questions about one session:
        remembered ones, and the others from one BatchCheck. Questions left out of the
        result (one alone, or all of them when Watchword has no BatchCheck) are for the
        caller to ask one by one. (For :class:`watchword.RequireContext`.)"""
        outcomes: dict[Question, Outcome] = {}
        missing: list[Question] = []
        for question in dict.fromkeys(questions):
            try:
                cached = self._cached(self._key(token, question), question)
            except Undecidable as refused:
                outcomes[question] = refused
                continue
            if cached is MISS:
                missing.append(question)
            else:
                outcomes[question] = cast("bool | None", cached)
        if len(missing) < 2 or not self._batching:
            return outcomes
        missing = missing[:MAX_BATCH_CHECKS]  # the first ones first; any others one by one
        written = self.client.last_revision
        try:
            results = await self.client.batch_check(
                checks=[_as_check(question, token) for question in missing]
            )
        except Unimplemented as error:
            # An older server, or BatchCheck disabled there: ask one by one from now on.
            _log.info("Watchword has no BatchCheck (%s): checks go one by one", error)
            self._batching = False
            return outcomes
        except (WatchwordError, grpc.RpcError) as error:
            # Raised only if a question it leaves unanswered is needed (as one by one).
            failed = CheckFailed(str(error))
            failed.__cause__ = error
            outcomes.update((question, failed) for question in missing)
            return outcomes
        for question, result in zip(missing, results, strict=True):
            outcome = (
                result.allowed if result.error is None else self._failed(question, result.error)
            )
            self._keep(self._key(token, question), outcome, written)
            outcomes[question] = outcome
        return outcomes

    async def _answer(
        self,
        token: str,
        question: Question,
        ask: Callable[[], Awaitable[T | None]],
    ) -> T | None:
        key = self._key(token, question)
        cached = self._cached(key, question)
        if cached is not MISS:
            return cast("T | None", cached)
        written = self.client.last_revision
        outcome: T | None | Undecidable | CheckFailed
        try:
            outcome = await ask()
        except WatchwordError as error:
            outcome = self._failed(question, error)
        except grpc.RpcError as error:  # in case a raw error slips through the client
            raise CheckFailed(str(error)) from error
        self._keep(key, outcome, written)
        if isinstance(outcome, Undecidable | CheckFailed):
            raise outcome
        return outcome

    @staticmethod
    def _key(token: str, question: Question) -> tuple[bytes, Question]:
        # Keyed on the token's digest, so the cache holds no usable credentials.
        return hashlib.sha256(token.encode()).digest(), question

    def _cached(self, key: tuple[bytes, Question], question: Question) -> Any:
        """The remembered answer, or MISS; raises Undecidable for a remembered refusal."""
        if self._cache is None:
            return MISS
        entry = self._cache.get(key)
        if entry is MISS:
            return MISS
        written, value = entry
        if written != self.client.last_revision:
            return MISS  # remembered before the client's latest write: ask again
        if value is _REFUSED:
            raise Undecidable(f"Watchword refused the check {question[0]}")
        return value

    def _keep(self, key: tuple[bytes, Question], outcome: Any, written: str) -> None:
        """Remember an outcome (not a failure to answer), with the revision it was asked at."""
        if self._cache is None or isinstance(outcome, CheckFailed):
            return
        self._cache.put(key, (written, _REFUSED if isinstance(outcome, Undecidable) else outcome))

    @staticmethod
    def _failed(question: Question, error: WatchwordError) -> None | Undecidable | CheckFailed:
        """What a check that Watchword did not answer comes to."""
        if error.code == grpc.StatusCode.UNAUTHENTICATED and error.reason == _SESSION_INVALID:
            return None
        outcome: Undecidable | CheckFailed
        if error.code == grpc.StatusCode.INVALID_ARGUMENT:
            # Watchword refused the question itself (e.g. a record id taken from a
            # hostile request). Not "no": under ~ that would become "yes".
            _log.warning("Watchword refused the check %s: %s", question[0], error)
            outcome = Undecidable(f"Watchword refused the check {question[0]}: {error}")
        else:
            outcome = CheckFailed(str(error))
        outcome.__cause__ = error
        return outcome


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
            "watchword.requires has no guard: call watchword.configure(client) "
            "at start-up, or pass guard="
        )
    return _default
