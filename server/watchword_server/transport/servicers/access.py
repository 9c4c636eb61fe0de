"""AccessService: membership and permission checks, one at a time or in batches."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from watchword.auth.v1 import access_service_pb2, access_service_pb2_grpc
from watchword_server.config import Messages
from watchword_server.domain.access.checks import (
    AccessChecks,
    Answer,
    BatchItem,
    Subject,
    SubjectKind,
)
from watchword_server.model.errors import DomainError
from watchword_server.model.records import Grant
from watchword_server.transport.errors import to_status_proto

__all__ = ["AccessServicer"]

Context = grpc.aio.ServicerContext[Any, Any]

_KINDS = {kind.value: kind for kind in SubjectKind}


# Subject(kind, value) without a Python frame on the hot path: a named tuple's own __new__
# is Python code, tuple's is not, and makes the same object.
_new_subject: Callable[[tuple[SubjectKind, str]], Subject] = functools.partial(
    tuple.__new__, Subject
)


def _subject(request: Any) -> Subject | None:
    which = request.WhichOneof("subject")
    if which is None:
        return None
    return Subject(_KINDS[which], getattr(request, which))


def _grant(request: access_service_pb2.HasPermissionRequest) -> Grant:
    return Grant(request.name, request.table_name, request.record_id)


def _item(check: access_service_pb2.Check) -> BatchItem:
    which = check.WhichOneof("kind")
    if which == "membership":
        request = check.membership
        return BatchItem(_subject(request), group=request.group, min_revision=request.min_revision)
    if which == "permission":
        grant_request = check.permission
        return BatchItem(
            _subject(grant_request),
            grant=_grant(grant_request),
            min_revision=grant_request.min_revision,
        )
    return BatchItem(None)


# Built answers kept per servicer: distinct ones are few (allowed or not, at the revisions
# current lately), and building a message costs more than a check's own cached work. gRPC
# only serializes a response, so one object may answer many calls.
_MAX_BUILT = 256

Built = TypeVar("Built")


def _remember(built: dict[Answer, Built], answer: Answer, response: Built) -> Built:
    if len(built) >= _MAX_BUILT:
        built.clear()  # revisions long past; the current ones come back at once
    built[answer] = response
    return response


class AccessServicer(access_service_pb2_grpc.AccessServiceServicer):
    """Serves AccessService; wrap it with ``wrap_servicer``."""

    def __init__(self, checks: AccessChecks, messages: Messages) -> None:
        self._checks = checks
        self._messages = messages
        self._memberships: dict[Answer, access_service_pb2.HasMembershipResponse] = {}
        self._permissions: dict[Answer, access_service_pb2.HasPermissionResponse] = {}

    async def HasMembership(  # noqa: N802 - gRPC method names
        self, request: access_service_pb2.HasMembershipRequest, context: Context
    ) -> access_service_pb2.HasMembershipResponse:
        which = request.WhichOneof("subject")  # _subject inlined: this is the hot path
        subject = None if which is None else _new_subject((_KINDS[which], getattr(request, which)))
        group, min_revision = request.group, request.min_revision
        checks = self._checks
        answer = checks.known_membership(subject, group, min_revision) or (
            await checks.has_membership(subject, group, min_revision)
        )
        return self._memberships.get(answer) or _remember(
            self._memberships,
            answer,
            access_service_pb2.HasMembershipResponse(
                member=answer.allowed, revision=answer.revision
            ),
        )

    async def HasPermission(  # noqa: N802
        self, request: access_service_pb2.HasPermissionRequest, context: Context
    ) -> access_service_pb2.HasPermissionResponse:
        which = request.WhichOneof("subject")  # _subject and _grant inlined (the hot path)
        subject = None if which is None else _new_subject((_KINDS[which], getattr(request, which)))
        grant = Grant(request.name, request.table_name, request.record_id)
        min_revision = request.min_revision
        checks = self._checks
        answer = checks.known_permission(subject, grant, min_revision) or (
            await checks.has_permission(subject, grant, min_revision)
        )
        return self._permissions.get(answer) or _remember(
            self._permissions,
            answer,
            access_service_pb2.HasPermissionResponse(
                allowed=answer.allowed, revision=answer.revision
            ),
        )

    async def BatchCheck(  # noqa: N802
        self, request: access_service_pb2.BatchCheckRequest, context: Context
    ) -> access_service_pb2.BatchCheckResponse:
        answers = await self._checks.batch([_item(check) for check in request.checks])
        return access_service_pb2.BatchCheckResponse(
            results=[self._result(answer) for answer in answers]
        )

    def _result(self, answer: Answer | DomainError) -> access_service_pb2.CheckResult:
        if isinstance(answer, DomainError):
            return access_service_pb2.CheckResult(error=to_status_proto(answer, self._messages))
        return access_service_pb2.CheckResult(allowed=answer.allowed, revision=answer.revision)
