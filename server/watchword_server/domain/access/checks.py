"""Access checks: HasMembership, HasPermission and BatchCheck.

A BLOCKED user has no memberships and no permissions. A check through a session token
that is invalid, expired or revoked raises SessionInvalid, so that an interceptor can tell
"not logged in" from "not allowed". An unknown user is NOT_FOUND; an unknown group simply
has no members and no grants.

Answers come from the ``CheckCache`` when it has them (see there for why a cached answer is
never one that a delivered change made wrong), else from one indexed query.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

from watchword_server.domain.access.changes import is_revision
from watchword_server.domain.access.check_cache import CheckCache
from watchword_server.domain.accounts.sessions import Sessions, digest_or_invalid
from watchword_server.domain.common.lookups import parse_id
from watchword_server.model.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    SessionInvalid,
    UserNotFound,
)
from watchword_server.model.records import Grant, UserStatus
from watchword_server.storage.check_reads import CheckReads, SessionAnswer, UserAnswer

__all__ = [
    "MAX_BATCH",
    "AccessChecks",
    "Answer",
    "BatchItem",
    "Subject",
    "SubjectKind",
]

MAX_BATCH = 100
"""The most checks one BatchCheck may carry."""

_MAX_FIELD = 255


class SubjectKind(enum.Enum):
    """Whom a check is about."""

    USER_ID = "user_id"
    SESSION_TOKEN = "session_token"  # noqa: S105 - a field name
    GROUP = "group"


# Subject and Answer are named tuples rather than frozen dataclasses: one is made for
# every check, and a frozen dataclass's __init__ costs several times a tuple's.


class Subject(NamedTuple):
    """The subject of a check: a user (by id or session) or a group's own grants."""

    kind: SubjectKind
    value: str


class Answer(NamedTuple):
    """A check's answer and the revision of the state it reflects ("" if none known).

    Cached as it is: an entry's value is the Answer itself."""

    allowed: bool
    revision: str


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One check of a batch: a membership (``group`` set) or a permission (``grant`` set).
    Neither set is an empty check, an error of its own."""

    subject: Subject | None
    group: str | None = None
    grant: Grant | None = None
    min_revision: str = ""


class AccessChecks:
    """Answers membership and permission questions."""

    def __init__(self, reads: CheckReads, sessions: Sessions, cache: CheckCache) -> None:
        self._reads = reads
        self._sessions = sessions
        self._cache = cache

    # --- Answers from the cache, without a suspension (the hot path) --------------------
    #
    # None means only the full check can tell. Skipping its validation here is sound: an
    # answer is cached only after its question passed validation, and the same question
    # passes again (min_revision is checked by the cache itself).

    def known_membership(
        self, subject: Subject | None, group: str, min_revision: str = ""
    ) -> Answer | None:
        """``has_membership``'s answer if the cache holds it, else None."""
        if subject is None:
            return None
        kind = subject.kind
        if kind is SubjectKind.SESSION_TOKEN:
            user = self._sessions.known_user_key(subject.value, min_revision)
        elif kind is SubjectKind.USER_ID:
            user = subject.value
        else:
            return None
        if user is None:
            return None
        entry = self._cache.get(("m", user, group), min_revision)
        return None if entry is None else entry.value

    def known_permission(
        self, subject: Subject | None, grant: Grant, min_revision: str = ""
    ) -> Answer | None:
        """``has_permission``'s answer if the cache holds it, else None."""
        if subject is None:
            return None
        kind = subject.kind
        if kind is SubjectKind.USER_ID:
            owner, prefix = subject.value, "p"
        elif kind is SubjectKind.GROUP:
            owner, prefix = subject.value, "gp"
        else:
            user = self._sessions.known_user_key(subject.value, min_revision)
            if user is None:
                return None
            owner, prefix = user, "p"
        key = (prefix, owner, grant.name, grant.table_name, grant.record_id)
        entry = self._cache.get(key, min_revision)
        return None if entry is None else entry.value

    # --- HasMembership -------------------------------------------------------------------

    async def has_membership(
        self, subject: Subject | None, group: str, min_revision: str = ""
    ) -> Answer:
        """Whether the subject (a user) is a member of ``group``."""
        subject = _checked_membership(subject, group, min_revision)
        if subject.kind is SubjectKind.USER_ID:
            key = ("m", subject.value, group)
            entry = self._cache.get(key, min_revision)
            if entry is not None:
                return cast(Answer, entry.value)
            user_id = parse_id(subject.value, UserNotFound)
            generation, revision = self._cache.generation, self._cache.revision
            found = await self._reads.user_membership(user_id, group)
            return self._store_user_answer(key, user_id, found, generation, revision, group=group)
        digest = digest_or_invalid(subject.value)
        valid = self._sessions.cached(digest, min_revision)
        if valid is not None:
            user = valid.row.user
            key = ("m", valid.user_key, group)
            entry = self._cache.get(key, min_revision)
            if entry is not None:
                return cast(Answer, entry.value)
            generation, revision = self._cache.generation, self._cache.revision
            found = await self._reads.user_membership(user.id, group)
            return self._store_user_answer(key, user.id, found, generation, revision, group=group)
        generation, revision = self._cache.generation, self._cache.revision
        through = await self._reads.session_membership(digest, group)
        return await self._through_session(
            digest, through, ("m", group), generation, revision, group=group
        )

    # --- HasPermission -------------------------------------------------------------------

    async def has_permission(
        self, subject: Subject | None, grant: Grant, min_revision: str = ""
    ) -> Answer:
        """Whether the subject holds a grant matching ``grant`` (see the module doc)."""
        subject = _checked_permission(subject, grant, min_revision)
        name, table, record = grant.name, grant.table_name, grant.record_id
        if subject.kind is SubjectKind.USER_ID:
            key = ("p", subject.value, name, table, record)
            entry = self._cache.get(key, min_revision)
            if entry is not None:
                return cast(Answer, entry.value)
            user_id = parse_id(subject.value, UserNotFound)
            generation, revision = self._cache.generation, self._cache.revision
            found = await self._reads.user_permission(user_id, grant)
            return self._store_user_answer(key, user_id, found, generation, revision, name=name)
        if subject.kind is SubjectKind.GROUP:
            key = ("gp", subject.value, name, table, record)
            entry = self._cache.get(key, min_revision)
            if entry is not None:
                return cast(Answer, entry.value)
            if "\x00" in subject.value:
                return Answer(False, self._cache.revision)
            generation, revision = self._cache.generation, self._cache.revision
            answer = Answer(await self._reads.group_permission(subject.value, grant), revision)
            self._cache.put(
                key,
                answer,
                generation=generation,
                revision=revision,
                tags=[("group", subject.value), ("name", name)],
            )
            return answer
        digest = digest_or_invalid(subject.value)
        valid = self._sessions.cached(digest, min_revision)
        if valid is not None:
            user = valid.row.user
            key = ("p", valid.user_key, name, table, record)
            entry = self._cache.get(key, min_revision)
            if entry is not None:
                return cast(Answer, entry.value)
            generation, revision = self._cache.generation, self._cache.revision
            found = await self._reads.user_permission(user.id, grant)
            return self._store_user_answer(key, user.id, found, generation, revision, name=name)
        generation, revision = self._cache.generation, self._cache.revision
        through = await self._reads.session_permission(digest, grant)
        return await self._through_session(
            digest, through, ("p", name, table, record), generation, revision, name=name
        )

    # --- BatchCheck ----------------------------------------------------------------------

    async def batch(self, items: Sequence[BatchItem]) -> list[Answer | DomainError]:
        """Answer each item on its own: an item that fails gives its error, in its place.

        Raises:
            InvalidArgument: more than ``MAX_BATCH`` items.
        """
        if len(items) > MAX_BATCH:
            raise InvalidArgument(
                [FieldViolation("checks", f"at most {MAX_BATCH} checks, got {len(items)}")]
            )
        # Cached answers come straight from the cache; only the misses read (concurrently).
        answers: list[Answer | DomainError | None] = [self._known(item) for item in items]
        misses = [index for index, answer in enumerate(answers) if answer is None]
        results = await asyncio.gather(
            *(self._one(items[index]) for index in misses), return_exceptions=True
        )
        for index, result in zip(misses, results, strict=True):
            if not isinstance(result, Answer | DomainError):
                raise result
            answers[index] = result
        return [answer for answer in answers if answer is not None]

    def _known(self, item: BatchItem) -> Answer | None:
        if item.group is not None:
            return self.known_membership(item.subject, item.group, item.min_revision)
        if item.grant is not None:
            return self.known_permission(item.subject, item.grant, item.min_revision)
        return None

    def _one(self, item: BatchItem) -> Awaitable[Answer]:
        if item.group is not None:
            return self.has_membership(item.subject, item.group, item.min_revision)
        if item.grant is not None:
            return self.has_permission(item.subject, item.grant, item.min_revision)
        return _refuse(InvalidArgument([FieldViolation("kind", "membership or permission")]))

    # --- shared --------------------------------------------------------------------------

    def _store_user_answer(
        self,
        key: tuple[str, ...],
        user_id: uuid.UUID,
        found: UserAnswer | None,
        generation: int,
        revision: str,
        *,
        group: str | None = None,
        name: str | None = None,
    ) -> Answer:
        if found is None:
            raise UserNotFound()
        allowed = found.answer and found.status is not UserStatus.BLOCKED
        tags: list[tuple[str, object]] = [("user", user_id)]
        if group is not None:
            tags.append(("group", group))
        if name is not None:
            tags.append(("name", name))
        answer = Answer(allowed, revision)
        self._cache.put(key, answer, generation=generation, revision=revision, tags=tags)
        return answer

    async def _through_session(
        self,
        digest: bytes,
        through: SessionAnswer | None,
        question: tuple[str, ...],
        generation: int,
        revision: str,
        *,
        group: str | None = None,
        name: str | None = None,
    ) -> Answer:
        if through is None:
            raise SessionInvalid()
        valid = await self._sessions.accept(digest, through.session, generation, revision)
        user = valid.row.user
        key = (question[0], valid.user_key, *question[1:])
        found = UserAnswer(user.status, through.answer)
        return self._store_user_answer(
            key, user.id, found, generation, revision, group=group, name=name
        )


async def _refuse(error: DomainError) -> Answer:
    raise error


def _check_revision(problems: list[FieldViolation], min_revision: str) -> None:
    if min_revision and not is_revision(min_revision):
        problems.append(FieldViolation("min_revision", "not a revision this service returned"))


def _checked_membership(subject: Subject | None, group: str, min_revision: str) -> Subject:
    problems: list[FieldViolation] = []
    if subject is None or subject.kind is SubjectKind.GROUP or not subject.value:
        problems.append(FieldViolation("subject", "user_id or session_token is required"))
    if not group or len(group) > _MAX_FIELD or "\x00" in group:
        problems.append(FieldViolation("group", "a group name is required"))
    _check_revision(problems, min_revision)
    if problems or subject is None:
        raise InvalidArgument(problems)
    return subject


def _checked_permission(subject: Subject | None, grant: Grant, min_revision: str) -> Subject:
    problems: list[FieldViolation] = []
    if subject is None or not subject.value:
        problems.append(FieldViolation("subject", "user_id, session_token or group is required"))
    if not grant.name or len(grant.name) > _MAX_FIELD:
        problems.append(FieldViolation("name", "a permission name is required"))
    for field, value in (("table_name", grant.table_name), ("record_id", grant.record_id)):
        if len(value) > _MAX_FIELD or "\x00" in value:
            problems.append(FieldViolation(field, f"{field} is too long or malformed"))
    if "\x00" in grant.name:
        problems.append(FieldViolation("name", "name is malformed"))
    _check_revision(problems, min_revision)
    if problems or subject is None:
        raise InvalidArgument(problems)
    return subject
