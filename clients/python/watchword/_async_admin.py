"""AdminService methods of the asyncio client (service key of scope ``admin``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from watchword._async_transport import AsyncEventStream, AsyncTransport
from watchword._base import USE_CLIENT_DEFAULT, CallMetadata, Timeout, mask_of, struct_of
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import resources_pb2

__all__ = ["AsyncAdminMethods"]

_DEFAULT = USE_CLIENT_DEFAULT


class AsyncAdminMethods(AsyncTransport):
    """One coroutine per AdminService RPC, plus iterators that follow page tokens.

    Every write (users, groups, memberships, permissions, sessions) notes the revision the
    server returns: see ``last_revision`` and ``read_your_writes``.
    """

    # Users.

    async def create_user(
        self,
        *,
        user: resources_pb2.User,
        password: str = "",
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.User:
        """Create a user (email, names, status, extra) with a password; returns it with its id."""
        request = admin.CreateUserRequest(user=user, password=password)
        reply = await self._unary(self._admin.CreateUser, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.user

    async def get_user(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Return a user by id."""
        request = admin.GetUserRequest(user_id=user_id)
        return (await self._unary(self._admin.GetUser, request, timeout, metadata)).user

    async def lookup_user(
        self, *, email: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Return a user by e-mail address (matched case-insensitively)."""
        request = admin.LookupUserRequest(email=email)
        return (await self._unary(self._admin.LookupUser, request, timeout, metadata)).user

    async def list_users(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        status: int = 0,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> admin.ListUsersResponse:
        """One page of users, optionally only those with a ``UserStatus``."""
        request = admin.ListUsersRequest(
            page_size=page_size,
            page_token=page_token,
            status=resources_pb2.UserStatus.ValueType(status),
        )
        return await self._unary(self._admin.ListUsers, request, timeout, metadata)

    async def update_user(
        self,
        *,
        user: resources_pb2.User,
        update_mask: Sequence[str],
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.User:
        """Change the fields of ``user`` (which carries its ``id``) named in ``update_mask``."""
        request = admin.UpdateUserRequest(user=user, update_mask=mask_of(update_mask))
        reply = await self._unary(self._admin.UpdateUser, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.user

    async def delete_user(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Delete a user and revoke its sessions."""
        request = admin.DeleteUserRequest(user_id=user_id)
        reply = await self._unary(self._admin.DeleteUser, request, timeout, metadata)
        self._note_revision(reply.revision)

    async def disable_user(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Set a user DISABLED and revoke its sessions."""
        request = admin.DisableUserRequest(user_id=user_id)
        reply = await self._unary(self._admin.DisableUser, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.user

    async def block_user(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Set a user BLOCKED (no memberships, no permissions) and revoke its sessions."""
        request = admin.BlockUserRequest(user_id=user_id)
        reply = await self._unary(self._admin.BlockUser, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.user

    async def allow_user(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Set a disabled or blocked user ACTIVE again."""
        request = admin.AllowUserRequest(user_id=user_id)
        reply = await self._unary(self._admin.AllowUser, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.user

    async def approve_user(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Approve a user that is PENDING_APPROVAL."""
        request = admin.ApproveUserRequest(user_id=user_id)
        reply = await self._unary(self._admin.ApproveUser, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.user

    async def revoke_sessions(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Revoke all of a user's sessions."""
        request = admin.RevokeSessionsRequest(user_id=user_id)
        reply = await self._unary(self._admin.RevokeSessions, request, timeout, metadata)
        self._note_revision(reply.revision)

    async def get_second_factors(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> admin.GetSecondFactorsResponse:
        """The user's second factors (``methods``) and ``passkey_count``."""
        request = admin.GetSecondFactorsRequest(user_id=user_id)
        return await self._unary(self._admin.GetSecondFactors, request, timeout, metadata)

    async def reset_second_factors(
        self, *, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.User:
        """Remove the user's second factors, so the password alone logs in again."""
        request = admin.ResetSecondFactorsRequest(user_id=user_id)
        reply = await self._unary(self._admin.ResetSecondFactors, request, timeout, metadata)
        return reply.user

    # Groups, memberships and permissions.

    async def create_group(
        self,
        *,
        name: str,
        description: str = "",
        extra: Mapping[str, Any] | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.Group:
        """Create a group."""
        group = resources_pb2.Group(name=name, description=description, extra=struct_of(extra))
        request = admin.CreateGroupRequest(group=group)
        reply = await self._unary(self._admin.CreateGroup, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.group

    async def get_group(
        self, *, group: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> resources_pb2.Group:
        """Return a group by name."""
        request = admin.GetGroupRequest(group=group)
        return (await self._unary(self._admin.GetGroup, request, timeout, metadata)).group

    async def delete_group(
        self, *, group: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Delete a group."""
        request = admin.DeleteGroupRequest(group=group)
        reply = await self._unary(self._admin.DeleteGroup, request, timeout, metadata)
        self._note_revision(reply.revision)

    async def list_groups(
        self,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> admin.ListGroupsResponse:
        """One page of groups."""
        request = admin.ListGroupsRequest(page_size=page_size, page_token=page_token)
        return await self._unary(self._admin.ListGroups, request, timeout, metadata)

    async def add_membership(
        self,
        *,
        group: str,
        user_id: str,
        extra: Mapping[str, Any] | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.Membership:
        """Add a user to a group."""
        request = admin.AddMembershipRequest(group=group, user_id=user_id, extra=struct_of(extra))
        reply = await self._unary(self._admin.AddMembership, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.membership

    async def remove_membership(
        self, *, group: str, user_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Remove a user from a group."""
        request = admin.RemoveMembershipRequest(group=group, user_id=user_id)
        reply = await self._unary(self._admin.RemoveMembership, request, timeout, metadata)
        self._note_revision(reply.revision)

    async def list_memberships(
        self,
        *,
        user_id: str = "",
        group: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> admin.ListMembershipsResponse:
        """One page of the memberships of a user or of a group."""
        request = admin.ListMembershipsRequest(
            user_id=user_id, group=group, page_size=page_size, page_token=page_token
        )
        return await self._unary(self._admin.ListMemberships, request, timeout, metadata)

    async def add_permission(
        self,
        *,
        group: str,
        name: str,
        table_name: str = "",
        record_id: str = "",
        extra: Mapping[str, Any] | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.Permission:
        """Grant ``name`` (on a table, on a record; ``""`` is a wildcard) to a group."""
        request = admin.AddPermissionRequest(
            group=group,
            name=name,
            table_name=table_name,
            record_id=record_id,
            extra=struct_of(extra),
        )
        reply = await self._unary(self._admin.AddPermission, request, timeout, metadata)
        self._note_revision(reply.revision)
        return reply.permission

    async def remove_permission(
        self, *, permission_id: str, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> None:
        """Remove a grant by id."""
        request = admin.RemovePermissionRequest(permission_id=permission_id)
        reply = await self._unary(self._admin.RemovePermission, request, timeout, metadata)
        self._note_revision(reply.revision)

    async def list_permissions(
        self,
        *,
        group: str = "",
        user_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> admin.ListPermissionsResponse:
        """One page of the grants of a group or of a user (through its groups)."""
        request = admin.ListPermissionsRequest(
            group=group, user_id=user_id, page_size=page_size, page_token=page_token
        )
        return await self._unary(self._admin.ListPermissions, request, timeout, metadata)

    # Events.

    async def list_events(
        self,
        *,
        user_id: str = "",
        kind: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> admin.ListEventsResponse:
        """One page of the audit log, optionally of one user and of one ``EventKind``."""
        request = admin.ListEventsRequest(
            user_id=user_id,
            kind=resources_pb2.EventKind.ValueType(kind),
            page_size=page_size,
            page_token=page_token,
        )
        return await self._unary(self._admin.ListEvents, request, timeout, metadata)

    def watch_events(
        self, *, kind: int = 0, timeout: Timeout = None, metadata: CallMetadata = ()
    ) -> AsyncEventStream:
        """Stream events as they are written, by every server process on the database.

        Unlike the other methods, the default ``timeout`` is ``None``: a watch runs until
        cancelled. The call starts at once; ``await stream.subscribed()`` waits until the
        server listens.
        """
        request = admin.WatchEventsRequest(kind=resources_pb2.EventKind.ValueType(kind))
        return self._watch(request, timeout, metadata)

    async def log_event(
        self,
        *,
        description: str,
        origin: str = "",
        user_id: str = "",
        data: Mapping[str, Any] | None = None,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> resources_pb2.Event:
        """Write an event of the application's own (kind ``EVENT_KIND_APPLICATION``) to the
        audit log; returns it as stored. ``origin`` defaults to ``admin:<service key name>``;
        ``user_id``, when given, must name a user; ``data`` is JSON-like detail (16 KiB)."""
        request = admin.LogEventRequest(
            description=description, origin=origin, user_id=user_id, data=struct_of(data)
        )
        return (await self._unary(self._admin.LogEvent, request, timeout, metadata)).event

    # Iterators over every page; ``timeout`` applies to each page's call.

    async def iter_users(
        self,
        *,
        status: int = 0,
        page_size: int = 0,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> AsyncIterator[resources_pb2.User]:
        """Every user (optionally with a ``UserStatus``), page after page."""
        token = ""
        while True:
            page = await self.list_users(
                status=status,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
                metadata=metadata,
            )
            for user in page.users:
                yield user
            if not (token := page.next_page_token):
                return

    async def iter_groups(
        self, *, page_size: int = 0, timeout: Timeout = _DEFAULT, metadata: CallMetadata = ()
    ) -> AsyncIterator[resources_pb2.Group]:
        """Every group, page after page."""
        token = ""
        while True:
            page = await self.list_groups(
                page_size=page_size, page_token=token, timeout=timeout, metadata=metadata
            )
            for group in page.groups:
                yield group
            if not (token := page.next_page_token):
                return

    async def iter_memberships(
        self,
        *,
        user_id: str = "",
        group: str = "",
        page_size: int = 0,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> AsyncIterator[resources_pb2.Membership]:
        """Every membership of a user or of a group, page after page."""
        token = ""
        while True:
            page = await self.list_memberships(
                user_id=user_id,
                group=group,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
                metadata=metadata,
            )
            for membership in page.memberships:
                yield membership
            if not (token := page.next_page_token):
                return

    async def iter_permissions(
        self,
        *,
        group: str = "",
        user_id: str = "",
        page_size: int = 0,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> AsyncIterator[resources_pb2.Permission]:
        """Every grant of a group or of a user, page after page."""
        token = ""
        while True:
            page = await self.list_permissions(
                group=group,
                user_id=user_id,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
                metadata=metadata,
            )
            for permission in page.permissions:
                yield permission
            if not (token := page.next_page_token):
                return

    async def iter_events(
        self,
        *,
        user_id: str = "",
        kind: int = 0,
        page_size: int = 0,
        timeout: Timeout = _DEFAULT,
        metadata: CallMetadata = (),
    ) -> AsyncIterator[resources_pb2.Event]:
        """Every event of the audit log (optionally filtered), page after page."""
        token = ""
        while True:
            page = await self.list_events(
                user_id=user_id,
                kind=kind,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
                metadata=metadata,
            )
            for event in page.events:
                yield event
            if not (token := page.next_page_token):
                return
