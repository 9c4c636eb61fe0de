"""AccessService: membership and permission checks."""

from __future__ import annotations

from typing import Any

import grpc

from watchword.auth.v1 import access_service_pb2, access_service_pb2_grpc
from watchword_server.domain.access import AccessChecks, Grant, Subject, SubjectKind

__all__ = ["AccessServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


def _subject(request: Any) -> Subject | None:
    which = request.WhichOneof("subject")
    if which is None:
        return None
    return Subject(SubjectKind(which), getattr(request, which))


class AccessServicer(access_service_pb2_grpc.AccessServiceServicer):
    """Serves AccessService; build it with ``build_servicer``."""

    def __init__(self, checks: AccessChecks) -> None:
        self._checks = checks

    async def HasMembership(  # noqa: N802 - gRPC method names
        self, request: access_service_pb2.HasMembershipRequest, context: Context
    ) -> access_service_pb2.HasMembershipResponse:
        member = await self._checks.has_membership(_subject(request), request.group)
        return access_service_pb2.HasMembershipResponse(member=member)

    async def HasPermission(  # noqa: N802
        self, request: access_service_pb2.HasPermissionRequest, context: Context
    ) -> access_service_pb2.HasPermissionResponse:
        grant = Grant(request.name, request.table_name, request.record_id)
        allowed = await self._checks.has_permission(_subject(request), grant)
        return access_service_pb2.HasPermissionResponse(allowed=allowed)
