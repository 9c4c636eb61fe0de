"""Access checks: HasMembership and HasPermission.

A BLOCKED user has no memberships and no permissions. A check through a session token
that is invalid, expired or revoked raises SessionInvalid, so that an interceptor can tell
"not logged in" from "not allowed". An unknown user is NOT_FOUND; an unknown group simply
has no members and no grants.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from watchword_server.domain.errors import (
    FieldViolation,
    InvalidArgument,
    SessionInvalid,
    UserNotFound,
)
from watchword_server.domain.lookups import parse_id
from watchword_server.domain.sessions import SessionExpired, Sessions, digest_or_invalid
from watchword_server.domain.types import UserStatus
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import access as access_rows
from watchword_server.storage.repositories.access import Grant, SessionAnswer

__all__ = ["AccessChecks", "Grant", "Subject", "SubjectKind"]

_MAX_FIELD = 255


class SubjectKind(enum.Enum):
    """Whom a check is about."""

    USER_ID = "user_id"
    SESSION_TOKEN = "session_token"  # noqa: S105 - a field name
    GROUP = "group"


@dataclass(frozen=True)
class Subject:
    """The subject of a check: a user (by id or session) or a group's own grants."""

    kind: SubjectKind
    value: str


class AccessChecks:
    """Answers membership and permission questions."""

    def __init__(self, database: Database, sessions: Sessions) -> None:
        self._database = database
        self._sessions = sessions

    async def has_membership(self, subject: Subject | None, group: str) -> bool:
        """Whether the subject (a user) is a member of ``group``."""
        problems: list[FieldViolation] = []
        if subject is None or subject.kind is SubjectKind.GROUP or not subject.value:
            problems.append(FieldViolation("subject", "user_id or session_token is required"))
        if not group or len(group) > _MAX_FIELD or "\x00" in group:
            problems.append(FieldViolation("group", "a group name is required"))
        if problems or subject is None:
            raise InvalidArgument(problems)
        if subject.kind is SubjectKind.USER_ID:
            user_id = parse_id(subject.value, UserNotFound)
            async with self._database.connect() as conn:
                found = await access_rows.user_membership(conn, user_id, group)
            return _user_answer(found)
        digest = digest_or_invalid(subject.value)
        try:
            async with self._database.begin() as conn:
                answer = await access_rows.session_membership(conn, digest, group)
                return await self._session_answer(conn, digest, answer)
        except SessionExpired as expired:
            await self._sessions.drop(expired.digest)
            raise SessionInvalid() from None

    async def has_permission(self, subject: Subject | None, grant: Grant) -> bool:
        """Whether the subject holds a grant matching ``grant`` (see the module doc)."""
        problems: list[FieldViolation] = []
        if subject is None or not subject.value:
            problems.append(
                FieldViolation("subject", "user_id, session_token or group is required")
            )
        if not grant.name or len(grant.name) > _MAX_FIELD:
            problems.append(FieldViolation("name", "a permission name is required"))
        for field, value in (("table_name", grant.table_name), ("record_id", grant.record_id)):
            if len(value) > _MAX_FIELD or "\x00" in value:
                problems.append(FieldViolation(field, f"{field} is too long or malformed"))
        if "\x00" in grant.name:
            problems.append(FieldViolation("name", "name is malformed"))
        if problems or subject is None:
            raise InvalidArgument(problems)
        if subject.kind is SubjectKind.GROUP:
            if "\x00" in subject.value:
                return False
            async with self._database.connect() as conn:
                return await access_rows.group_permission(conn, subject.value, grant)
        if subject.kind is SubjectKind.USER_ID:
            user_id = parse_id(subject.value, UserNotFound)
            async with self._database.connect() as conn:
                found = await access_rows.user_permission(conn, user_id, grant)
            return _user_answer(found)
        digest = digest_or_invalid(subject.value)
        try:
            async with self._database.begin() as conn:
                answer = await access_rows.session_permission(conn, digest, grant)
                return await self._session_answer(conn, digest, answer)
        except SessionExpired as expired:
            await self._sessions.drop(expired.digest)
            raise SessionInvalid() from None

    async def _session_answer(
        self, conn: Connection, digest: bytes, answer: SessionAnswer | None
    ) -> bool:
        if answer is None:
            raise SessionInvalid()
        await self._sessions.admit(
            conn,
            digest,
            session_id=answer.session_id,
            lifetime=answer.lifetime,
            last_seen_time=answer.last_seen_time,
            status=answer.status,
        )
        return answer.answer


def _user_answer(found: tuple[UserStatus, bool] | None) -> bool:
    if found is None:
        raise UserNotFound()
    status, answer = found
    return answer and status is not UserStatus.BLOCKED
