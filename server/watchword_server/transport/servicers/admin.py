"""AdminService: users, groups, memberships, permissions and the audit log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import admin_service_pb2_grpc
from watchword_server.domain.admin.app_events import ApplicationEvent, ApplicationEvents
from watchword_server.domain.admin.events import EventReader
from watchword_server.domain.admin.groups import GroupAdmin, NewPermission
from watchword_server.domain.admin.second_factors import SecondFactorAdmin
from watchword_server.domain.admin.users import NewUser, UserAdmin, UserChanges
from watchword_server.model.records import CallContext, EventKind
from watchword_server.transport.convert import (
    call_context,
    event_to_proto,
    group_to_proto,
    kind_filter,
    membership_to_proto,
    methods_to_proto,
    permission_to_proto,
    status_filter,
    struct_to_dict,
    user_to_proto,
)
from watchword_server.transport.service_key_check import current_caller

__all__ = ["AdminServicer"]

Context = grpc.aio.ServicerContext[Any, Any]


_MAX_ORIGIN = 255


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    """Serves AdminService; wrap it with ``wrap_servicer``."""

    def __init__(
        self,
        users: UserAdmin,
        groups: GroupAdmin,
        events: EventReader,
        second_factors: SecondFactorAdmin,
        app_events: ApplicationEvents,
    ) -> None:
        self._users = users
        self._groups = groups
        self._events = events
        self._second_factors = second_factors
        self._app_events = app_events

    def _call(self) -> CallContext:
        caller = current_caller.get()
        # A key named before names were bounded may be longer than an event's origin.
        origin = f"admin:{caller.name}"[:_MAX_ORIGIN] if caller else "admin"
        return call_context(origin=origin)

    # Users

    async def CreateUser(  # noqa: N802 - gRPC method names
        self, request: admin.CreateUserRequest, context: Context
    ) -> admin.CreateUserResponse:
        new = NewUser(
            email=request.user.email,
            first_name=request.user.first_name,
            last_name=request.user.last_name,
            status=status_filter(request.user.status, "user.status"),
            email_verified=request.user.email_verified,
            extra=struct_to_dict(request.user.extra, "user.extra"),
            password=request.password,
        )
        user, revision = await self._users.create(new, self._call())
        return admin.CreateUserResponse(user=user_to_proto(user), revision=revision)

    async def GetUser(  # noqa: N802
        self, request: admin.GetUserRequest, context: Context
    ) -> admin.GetUserResponse:
        return admin.GetUserResponse(user=user_to_proto(await self._users.get(request.user_id)))

    async def LookupUser(  # noqa: N802
        self, request: admin.LookupUserRequest, context: Context
    ) -> admin.LookupUserResponse:
        user = await self._users.lookup(request.email)
        return admin.LookupUserResponse(user=user_to_proto(user))

    async def ListUsers(  # noqa: N802
        self, request: admin.ListUsersRequest, context: Context
    ) -> admin.ListUsersResponse:
        users, next_token = await self._users.list(
            size=request.page_size,
            token=request.page_token,
            status=status_filter(request.status),
        )
        return admin.ListUsersResponse(
            users=[user_to_proto(user) for user in users], next_page_token=next_token
        )

    async def UpdateUser(  # noqa: N802
        self, request: admin.UpdateUserRequest, context: Context
    ) -> admin.UpdateUserResponse:
        changes = UserChanges(
            paths=list(request.update_mask.paths),
            email=request.user.email,
            first_name=request.user.first_name,
            last_name=request.user.last_name,
            status=status_filter(request.user.status, "user.status"),
            email_verified=request.user.email_verified,
            extra=struct_to_dict(request.user.extra, "user.extra"),
        )
        user, revision = await self._users.update(request.user.id, changes, self._call())
        return admin.UpdateUserResponse(user=user_to_proto(user), revision=revision)

    async def DeleteUser(  # noqa: N802
        self, request: admin.DeleteUserRequest, context: Context
    ) -> admin.DeleteUserResponse:
        revision = await self._users.delete(request.user_id, self._call())
        return admin.DeleteUserResponse(revision=revision)

    async def DisableUser(  # noqa: N802
        self, request: admin.DisableUserRequest, context: Context
    ) -> admin.DisableUserResponse:
        user, revision = await self._users.set_status(
            request.user_id, EventKind.USER_DISABLED, self._call()
        )
        return admin.DisableUserResponse(user=user_to_proto(user), revision=revision)

    async def BlockUser(  # noqa: N802
        self, request: admin.BlockUserRequest, context: Context
    ) -> admin.BlockUserResponse:
        user, revision = await self._users.set_status(
            request.user_id, EventKind.USER_BLOCKED, self._call()
        )
        return admin.BlockUserResponse(user=user_to_proto(user), revision=revision)

    async def AllowUser(  # noqa: N802
        self, request: admin.AllowUserRequest, context: Context
    ) -> admin.AllowUserResponse:
        user, revision = await self._users.set_status(
            request.user_id, EventKind.USER_ALLOWED, self._call()
        )
        return admin.AllowUserResponse(user=user_to_proto(user), revision=revision)

    async def ApproveUser(  # noqa: N802
        self, request: admin.ApproveUserRequest, context: Context
    ) -> admin.ApproveUserResponse:
        user, revision = await self._users.set_status(
            request.user_id, EventKind.USER_APPROVED, self._call()
        )
        return admin.ApproveUserResponse(user=user_to_proto(user), revision=revision)

    async def RevokeSessions(  # noqa: N802
        self, request: admin.RevokeSessionsRequest, context: Context
    ) -> admin.RevokeSessionsResponse:
        revision = await self._users.revoke_sessions(request.user_id, self._call())
        return admin.RevokeSessionsResponse(revision=revision)

    async def GetSecondFactors(  # noqa: N802
        self, request: admin.GetSecondFactorsRequest, context: Context
    ) -> admin.GetSecondFactorsResponse:
        summary = await self._second_factors.get(request.user_id)
        return admin.GetSecondFactorsResponse(
            methods=methods_to_proto(summary.methods),  # type: ignore[arg-type]
            passkey_count=summary.passkey_count,
        )

    async def ResetSecondFactors(  # noqa: N802
        self, request: admin.ResetSecondFactorsRequest, context: Context
    ) -> admin.ResetSecondFactorsResponse:
        user = await self._second_factors.reset(request.user_id, self._call())
        return admin.ResetSecondFactorsResponse(user=user_to_proto(user))

    # Groups

    async def CreateGroup(  # noqa: N802
        self, request: admin.CreateGroupRequest, context: Context
    ) -> admin.CreateGroupResponse:
        group, revision = await self._groups.create_group(
            request.group.name,
            request.group.description,
            struct_to_dict(request.group.extra, "group.extra"),
            self._call(),
        )
        return admin.CreateGroupResponse(group=group_to_proto(group), revision=revision)

    async def GetGroup(  # noqa: N802
        self, request: admin.GetGroupRequest, context: Context
    ) -> admin.GetGroupResponse:
        group = await self._groups.get_group(request.group)
        return admin.GetGroupResponse(group=group_to_proto(group))

    async def DeleteGroup(  # noqa: N802
        self, request: admin.DeleteGroupRequest, context: Context
    ) -> admin.DeleteGroupResponse:
        revision = await self._groups.delete_group(request.group, self._call())
        return admin.DeleteGroupResponse(revision=revision)

    async def ListGroups(  # noqa: N802
        self, request: admin.ListGroupsRequest, context: Context
    ) -> admin.ListGroupsResponse:
        groups, next_token = await self._groups.list_groups(
            size=request.page_size, token=request.page_token
        )
        return admin.ListGroupsResponse(
            groups=[group_to_proto(group) for group in groups], next_page_token=next_token
        )

    # Memberships

    async def AddMembership(  # noqa: N802
        self, request: admin.AddMembershipRequest, context: Context
    ) -> admin.AddMembershipResponse:
        membership, revision = await self._groups.add_membership(
            request.group, request.user_id, struct_to_dict(request.extra), self._call()
        )
        return admin.AddMembershipResponse(
            membership=membership_to_proto(membership), revision=revision
        )

    async def RemoveMembership(  # noqa: N802
        self, request: admin.RemoveMembershipRequest, context: Context
    ) -> admin.RemoveMembershipResponse:
        revision = await self._groups.remove_membership(
            request.group, request.user_id, self._call()
        )
        return admin.RemoveMembershipResponse(revision=revision)

    async def ListMemberships(  # noqa: N802
        self, request: admin.ListMembershipsRequest, context: Context
    ) -> admin.ListMembershipsResponse:
        rows, next_token = await self._groups.list_memberships(
            user_id=request.user_id,
            group=request.group,
            size=request.page_size,
            token=request.page_token,
        )
        return admin.ListMembershipsResponse(
            memberships=[membership_to_proto(row) for row in rows], next_page_token=next_token
        )

    # Permissions

    async def AddPermission(  # noqa: N802
        self, request: admin.AddPermissionRequest, context: Context
    ) -> admin.AddPermissionResponse:
        new = NewPermission(
            group=request.group,
            name=request.name,
            table_name=request.table_name,
            record_id=request.record_id,
            extra=struct_to_dict(request.extra),
        )
        permission, revision = await self._groups.add_permission(new, self._call())
        return admin.AddPermissionResponse(
            permission=permission_to_proto(permission), revision=revision
        )

    async def RemovePermission(  # noqa: N802
        self, request: admin.RemovePermissionRequest, context: Context
    ) -> admin.RemovePermissionResponse:
        revision = await self._groups.remove_permission(request.permission_id, self._call())
        return admin.RemovePermissionResponse(revision=revision)

    async def ListPermissions(  # noqa: N802
        self, request: admin.ListPermissionsRequest, context: Context
    ) -> admin.ListPermissionsResponse:
        rows, next_token = await self._groups.list_permissions(
            group=request.group,
            user_id=request.user_id,
            size=request.page_size,
            token=request.page_token,
        )
        return admin.ListPermissionsResponse(
            permissions=[permission_to_proto(row) for row in rows], next_page_token=next_token
        )

    # Events

    async def ListEvents(  # noqa: N802
        self, request: admin.ListEventsRequest, context: Context
    ) -> admin.ListEventsResponse:
        events, next_token = await self._events.list(
            user_id=request.user_id,
            kind=kind_filter(request.kind),
            size=request.page_size,
            token=request.page_token,
        )
        return admin.ListEventsResponse(
            events=[event_to_proto(event) for event in events], next_page_token=next_token
        )

    async def WatchEvents(  # noqa: N802
        self, request: admin.WatchEventsRequest, context: Context
    ) -> AsyncIterator[admin.WatchEventsResponse]:
        async with self._events.watch(kind_filter(request.kind)) as events:
            # Headers now tell the client it is subscribed: nothing later will be missed.
            await context.send_initial_metadata(())
            async for event in events:
                yield admin.WatchEventsResponse(event=event_to_proto(event))

    async def LogEvent(  # noqa: N802
        self, request: admin.LogEventRequest, context: Context
    ) -> admin.LogEventResponse:
        event = ApplicationEvent(
            description=request.description,
            origin=request.origin,
            user_id=request.user_id,
            data=struct_to_dict(request.data, "data"),
        )
        written = await self._app_events.log(event, self._call())
        return admin.LogEventResponse(event=event_to_proto(written))
