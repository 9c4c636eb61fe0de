"""What ``watchword.requires`` checks: the call as conditions see it
(:class:`RequireContext`) and the conditions themselves, which combine with ``&``, ``|``
and ``~``.

A condition has three outcomes: yes, no, or undecided (it raises :class:`Undecidable`:
there is no valid session to ask about, or Watchword refused the question). ``~`` keeps
an undecided part undecided, so that "not a member" never admits a caller who has no
membership to look at; ``|`` and ``&`` settle without it when another part decides.
A call whose condition stays undecided is refused.

Checking a combination does not change what it means, only how its answers are fetched:
the membership and permission questions it may ask are noted up front, and the first one
that is needed asks Watchword all of them at once (one BatchCheck) instead of one call
each. What each question came to is remembered for the rest of the call."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import grpc

from watchword._guard import (
    CheckFailed,
    Guard,
    Outcome,
    Question,
    Undecidable,
    membership_question,
    permission_question,
)
from watchword.auth.v1 import resources_pb2

__all__ = [
    "Condition",
    "ConditionLike",
    "Denial",
    "Record",
    "RequireContext",
    "Undecidable",
    "as_condition",
    "has_membership",
    "has_permission",
    "is_logged",
]

ConditionLike: TypeAlias = (
    "Condition | Callable[[RequireContext], bool | Condition | Awaitable[bool | Condition]]"
)
"""A :class:`Condition`, or any function (sync or async) of a :class:`RequireContext` that
gives a ``bool`` or a :class:`Condition` (which is then checked)."""
Record: TypeAlias = "str | int | Callable[[Any], str | int | None] | None"
"""A record id for :func:`has_permission`, or a function of the request giving it."""


@dataclass(frozen=True)
class Denial:
    """Why a call was refused, with the status it gets by default.

    Attributes:
        code: UNAUTHENTICATED (no valid session) or PERMISSION_DENIED.
        message: The status message sent by default.
    """

    code: grpc.StatusCode
    message: str


class RequireContext:
    """One call as conditions see it.

    Attributes:
        request: The request message (the request iterator for client-streaming RPCs).
        context: The call's ``grpc.aio.ServicerContext``.
        method: The RPC's name, e.g. ``"CreatePost"``.
        guard: The guard that checks this call.
        token: The end user's session token from the metadata; ``None`` if absent.
        session_invalid: True when there is no token, or once Watchword has said it is
            invalid, expired or revoked.
        denial: Set when the call is refused, before ``otherwise`` is called.
    """

    def __init__(
        self, guard: Guard, request: Any, context: grpc.aio.ServicerContext[Any, Any], method: str
    ) -> None:
        self.guard = guard
        self.request = request
        self.context = context
        self.method = method
        self.token = guard.session_token(context.invocation_metadata())
        self.session_invalid = self.token is None
        self.denial: Denial | None = None
        self._user: resources_pb2.User | None | Literal[False] = False  # False: not asked yet
        # What each membership or permission question came to, in this call (for the
        # session in self.token), and the questions the conditions checked so far may ask.
        self._outcomes: dict[Question, Outcome] = {}
        self._expected: dict[Question, None] = {}

    def _for_request(self, request: Any, method: str) -> RequireContext:
        """A context for a nested protected call on the same servicer context: its own
        request (what its conditions read), the session answers learned so far."""
        nested = RequireContext(self.guard, request, self.context, method)
        if nested.token == self.token:
            nested._user = self._user
            nested.session_invalid = self.session_invalid
            nested._outcomes = self._outcomes
        return nested

    async def user(self) -> resources_pb2.User | None:
        """The logged-in user (Watchword's Introspect, asked at most once per call);
        ``None`` without a valid session. Do not modify it: it may be cached."""
        if self._user is False:
            self._user = None if self.token is None else await self.guard.user(self.token)
            self.session_invalid = self._user is None
        return self._user

    async def is_logged(self) -> bool:
        """True when the call carries a valid session."""
        return await self.user() is not None

    async def has_membership(self, group: str) -> bool:
        """True when the session's user belongs to ``group``.

        Raises:
            Undecidable: There is no valid session (no user to ask about).
        """
        token = self._valid_token()
        question = membership_question(group)
        return self._note(
            await self._ask(token, question, lambda: self.guard.has_membership(token, group))
        )

    async def has_permission(self, name: str, table_name: str = "", record_id: str = "") -> bool:
        """True when the session's user holds the permission (see HasPermission).

        Raises:
            Undecidable: There is no valid session, or Watchword refused the question
                (e.g. a record id it does not accept).
        """
        token = self._valid_token()
        question = permission_question(name, table_name, record_id)
        return self._note(
            await self._ask(
                token,
                question,
                lambda: self.guard.has_permission(token, name, table_name, record_id),
            )
        )

    def _expect(self, condition: Condition) -> None:
        """Note the questions ``condition`` may ask, so they go to Watchword together."""
        if self.token is not None and not self.session_invalid:
            self._expected.update(dict.fromkeys(condition._questions(self)))

    async def _ask(
        self, token: str, question: Question, one: Callable[[], Awaitable[bool | None]]
    ) -> bool | None:
        """The answer to ``question``: known in this call already, fetched together with
        the other expected questions not yet answered, or asked alone (``one``)."""
        if question not in self._outcomes and question in self._expected:
            others = (each for each in self._expected if each not in self._outcomes)
            waiting = [question, *(each for each in others if each != question)]
            if len(waiting) > 1:
                self._outcomes.update(await self.guard._answers(token, waiting))
        if question in self._outcomes:
            outcome = self._outcomes[question]
            if isinstance(outcome, Undecidable | CheckFailed):
                raise outcome
            return outcome
        try:
            answer = await one()
        except Undecidable as refused:
            self._outcomes[question] = refused
            raise
        self._outcomes[question] = answer
        return answer

    def _valid_token(self) -> str:
        if self.token is None:
            raise Undecidable("no session token")
        if self.session_invalid:
            raise Undecidable("the session is invalid")
        return self.token

    def _note(self, answer: bool | None) -> bool:
        if answer is None:
            self.session_invalid = True
            raise Undecidable("the session is invalid")
        return answer


class Condition:
    """Something a call must satisfy. Combine conditions with ``&``, ``|`` and ``~``;
    plain functions of a :class:`RequireContext` (sync or async) combine with them too.
    Subclasses implement :meth:`check`.

    A condition has no truth value of its own (``if has_membership("x")`` raises
    TypeError): it is checked against a call."""

    async def check(self, ctx: RequireContext) -> bool:
        """True when the call may proceed, False when it may not.

        Raises:
            Undecidable: The condition cannot be decided for this call.
        """
        raise NotImplementedError

    def _questions(self, ctx: RequireContext) -> Iterator[Question]:
        """The membership and permission questions checking this may ask (those known
        without checking: a function's are not)."""
        return iter(())

    def __bool__(self) -> bool:
        raise TypeError(
            f"{self!r} is a condition, not a bool: pass it to requires(), or check it with "
            "`await condition.check(ctx)`"
        )

    def __and__(self, other: ConditionLike) -> Condition:
        return _All(self, as_condition(other))

    def __rand__(self, other: ConditionLike) -> Condition:
        return _All(as_condition(other), self)

    def __or__(self, other: ConditionLike) -> Condition:
        return _Any(self, as_condition(other))

    def __ror__(self, other: ConditionLike) -> Condition:
        return _Any(as_condition(other), self)

    def __invert__(self) -> Condition:
        return _Not(self)


class _Function(Condition):
    def __init__(
        self,
        function: Callable[[RequireContext], bool | Condition | Awaitable[bool | Condition]],
    ) -> None:
        self._function = function

    async def check(self, ctx: RequireContext) -> bool:
        result: Any = self._function(ctx)
        while True:
            if inspect.isawaitable(result):
                result = await result
            elif isinstance(result, Condition):
                return await result.check(ctx)
            elif isinstance(result, bool):
                return result
            else:
                # Truthiness would admit anything: a forgotten await, an object, a string.
                raise TypeError(
                    f"the condition {self!r} gave {result!r}: a condition function must "
                    "return a bool or a Condition (or an awaitable of one)"
                )

    def __repr__(self) -> str:
        return str(getattr(self._function, "__qualname__", repr(self._function)))


class _All(Condition):
    def __init__(self, *parts: Condition) -> None:
        self._parts = parts

    async def check(self, ctx: RequireContext) -> bool:
        # Three-valued: any "no" decides; else any undecided part leaves it undecided.
        ctx._expect(self)
        undecided: Undecidable | None = None
        for part in self._parts:
            try:
                if not await part.check(ctx):
                    return False
            except Undecidable as error:
                undecided = undecided or error
        if undecided is not None:
            raise undecided
        return True

    def _questions(self, ctx: RequireContext) -> Iterator[Question]:
        for part in self._parts:
            yield from part._questions(ctx)

    def __repr__(self) -> str:
        return "(" + " & ".join(map(repr, self._parts)) + ")"


class _Any(Condition):
    def __init__(self, *parts: Condition) -> None:
        self._parts = parts

    async def check(self, ctx: RequireContext) -> bool:
        # Three-valued: any "yes" decides; else any undecided part leaves it undecided.
        ctx._expect(self)
        undecided: Undecidable | None = None
        for part in self._parts:
            try:
                if await part.check(ctx):
                    return True
            except Undecidable as error:
                undecided = undecided or error
        if undecided is not None:
            raise undecided
        return False

    def _questions(self, ctx: RequireContext) -> Iterator[Question]:
        for part in self._parts:
            yield from part._questions(ctx)

    def __repr__(self) -> str:
        return "(" + " | ".join(map(repr, self._parts)) + ")"


class _Not(Condition):
    def __init__(self, part: Condition) -> None:
        self._part = part

    async def check(self, ctx: RequireContext) -> bool:
        # An Undecidable passes through: "cannot tell" negated is still "cannot tell".
        return not await self._part.check(ctx)

    def _questions(self, ctx: RequireContext) -> Iterator[Question]:
        return self._part._questions(ctx)

    def __repr__(self) -> str:
        return f"~{self._part!r}"


class _IsLogged(Condition):
    async def check(self, ctx: RequireContext) -> bool:
        return await ctx.is_logged()

    def __repr__(self) -> str:
        return "is_logged"


class _HasMembership(Condition):
    def __init__(self, group: str) -> None:
        self._group = group

    async def check(self, ctx: RequireContext) -> bool:
        return await ctx.has_membership(self._group)

    def _questions(self, ctx: RequireContext) -> Iterator[Question]:
        yield membership_question(self._group)

    def __repr__(self) -> str:
        return f"has_membership({self._group!r})"


class _HasPermission(Condition):
    def __init__(self, name: str, table_name: str, record: Record) -> None:
        self._name = name
        self._table_name = table_name
        self._record = record

    def _record_id(self, request: Any) -> str:
        record = self._record(request) if callable(self._record) else self._record
        return "" if record is None else str(record)

    async def check(self, ctx: RequireContext) -> bool:
        record_id = self._record_id(ctx.request)
        return await ctx.has_permission(self._name, self._table_name, record_id)

    def _questions(self, ctx: RequireContext) -> Iterator[Question]:
        try:
            record_id = self._record_id(ctx.request)
        except Exception:  # reported by check(), if this part is checked
            return
        yield permission_question(self._name, self._table_name, record_id)

    def __repr__(self) -> str:
        return f"has_permission({self._name!r}, {self._table_name!r}, {self._record!r})"


is_logged: Condition = _IsLogged()
"""The call carries a valid session (the auth module's ``auth.is_logged``). Always
decided: no token, or one Watchword calls invalid, is a plain no (so ``~is_logged`` admits
anonymous callers only)."""


def has_membership(group: str) -> Condition:
    """The session's user belongs to ``group`` (and is not blocked); undecided without a
    valid session, so ``~has_membership("banned")`` does not admit anonymous callers."""
    return _HasMembership(group)


def has_permission(name: str, table_name: str = "", record: Record = None) -> Condition:
    """The session's user holds permission ``name``, through one of its groups.

    Args:
        name: The permission's name, e.g. ``"write"``.
        table_name: The table it is checked on; ``""`` for none.
        record: The record it is checked on: an id, or a function of the request that
            gives it (``lambda request: request.post_id``); ``None`` for none. Integers
            are sent as their decimal text. A function may be called more than once per
            call, so it should only read the request.

    Undecided without a valid session, or when Watchword refuses the question (e.g. a
    record id with a NUL from a hostile request), so ``~`` never admits those.
    """
    return _HasPermission(name, table_name, record)


def as_condition(condition: ConditionLike) -> Condition:
    """``condition`` as a :class:`Condition` (functions are wrapped)."""
    if isinstance(condition, Condition):
        return condition
    if callable(condition):
        return _Function(condition)
    raise TypeError(f"a condition is a Condition or a function, not {condition!r}")
