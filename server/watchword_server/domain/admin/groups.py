"""Group administration: groups, memberships and permissions; every change writes an event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from watchword_server.domain.access.changes import Change, ChangeNotices
from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.clock import Clock
from watchword_server.domain.common.lookups import existing_user, parse_id
from watchword_server.domain.common.paging import PageTokens, page_size, split_page
from watchword_server.domain.common.validation import Violations
from watchword_server.model.errors import (
    GroupAlreadyExists,
    GroupNotFound,
    InvalidArgument,
    MembershipNotFound,
    PermissionNotFound,
)
from watchword_server.model.records import (
    CallContext,
    EventKind,
    GroupRecord,
    MembershipRecord,
    PermissionRecord,
)
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import groups as group_rows

__all__ = ["GroupAdmin", "NewPermission"]

_MAX_NAME = 255
# The three fields of a grant share one unique index entry, which PostgreSQL caps near
# 2,700 bytes: 255 four-byte characters in each would not fit.
_MAX_GRANT_FIELD_BYTES = 800


@dataclass(frozen=True)
class NewPermission:
    """What AddPermission gives; empty table or record means "any"."""

    group: str
    name: str
    table_name: str
    record_id: str
    extra: dict[str, Any]


def _check_text(problems: Violations, field: str, value: str, *, required: bool) -> None:
    if required and not problems.required(field, value):
        return
    if len(value) > _MAX_NAME:
        problems.add(field, f"{field} must be at most {_MAX_NAME} characters")
    elif not value.isprintable():
        problems.add(field, f"{field} must not contain control characters")


class GroupAdmin:
    """The group half of AdminService."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        pages: PageTokens,
        clock: Clock,
        notices: ChangeNotices,
    ) -> None:
        self._database = database
        self._events = events
        self._pages = pages
        self._clock = clock
        self._notices = notices

    async def create_group(
        self, name: str, description: str, extra: dict[str, Any], call: CallContext
    ) -> tuple[GroupRecord, str]:
        """Create a group; names are unique and case-sensitive. Returns it and the revision
        it was committed at (as every change here does)."""
        problems = Violations()
        _check_text(problems, "group.name", name, required=True)
        if "\x00" in description:
            problems.add("group.description", "description must not contain NUL")
        if problems:
            raise InvalidArgument(problems.items)

        async def insert(conn: Connection) -> tuple[GroupRecord, str]:
            try:
                group = await group_rows.insert_group(
                    conn, name=name, description=description, extra=extra, now=self._clock.now()
                )
            except group_rows.GroupTaken as error:
                raise GroupAlreadyExists() from error
            await self._events.record(conn, EventKind.GROUP_CREATED, call, values={"group": name})
            # A new group has no members and no grants: no answer changes.
            revision = await self._notices.publish(conn, Change())
            return group, revision

        return await self._database.transaction(insert)

    async def get_group(self, name: str) -> GroupRecord:
        """The group called ``name``."""
        async with self._database.connect() as conn:
            return await _group(conn, name)

    async def delete_group(self, name: str, call: CallContext) -> str:
        """Delete a group with its memberships and permissions."""

        async def remove(conn: Connection) -> str:
            group = await _group(conn, name)
            await group_rows.delete_group(conn, group.id)
            await self._events.record(conn, EventKind.GROUP_DELETED, call, values={"group": name})
            # Rare, and it touches its members' and its grants' answers alike: drop all.
            return await self._notices.publish(conn, Change(everything=True))

        return await self._database.transaction(remove)

    async def list_groups(self, *, size: int, token: str) -> tuple[list[GroupRecord], str]:
        """A page of groups by name, and the next page's token."""
        limit = page_size(size)
        position = self._pages.decode("ListGroups", token)
        after = None if position is None else str(position.get("name", ""))
        async with self._database.connect() as conn:
            groups = await group_rows.list_groups(conn, after=after, limit=limit + 1)
        return split_page(
            groups, limit, lambda last: self._pages.encode("ListGroups", {"name": last.name})
        )

    async def add_membership(
        self, group: str, user_id: str, extra: dict[str, Any], call: CallContext
    ) -> tuple[MembershipRecord, str]:
        """Make the user a member; adding an existing membership returns it unchanged."""

        async def join(conn: Connection) -> tuple[MembershipRecord, str]:
            found = await _group(conn, group)
            user = await existing_user(conn, user_id)
            membership = await group_rows.insert_membership(
                conn, group=found, user_id=user.id, extra=extra, now=self._clock.now()
            )
            if membership is None:
                membership = await group_rows.find_membership(conn, found.id, user.id)
                if membership is None:  # removed again in the meantime
                    raise MembershipNotFound()
            else:
                await self._events.record(
                    conn, EventKind.MEMBERSHIP_ADDED, call, user=user, values={"group": group}
                )
            revision = await self._notices.publish(conn, Change.of_users(user.id))
            return membership, revision

        return await self._database.transaction(join)

    async def remove_membership(self, group: str, user_id: str, call: CallContext) -> str:
        """End the user's membership of the group."""

        async def leave(conn: Connection) -> str:
            found = await _group(conn, group)
            user = await existing_user(conn, user_id)
            if not await group_rows.delete_membership(conn, found.id, user.id):
                raise MembershipNotFound()
            await self._events.record(
                conn, EventKind.MEMBERSHIP_REMOVED, call, user=user, values={"group": group}
            )
            return await self._notices.publish(conn, Change.of_users(user.id))

        return await self._database.transaction(leave)

    async def list_memberships(
        self, *, user_id: str, group: str, size: int, token: str
    ) -> tuple[list[MembershipRecord], str]:
        """Memberships of a user or of a group (or both: one membership), oldest first."""
        if not user_id and not group:
            problems = Violations()
            problems.add("user_id", "user_id or group is required")
            raise InvalidArgument(problems.items)
        limit = page_size(size)
        scope = f"ListMemberships:{user_id}:{group}"
        after = self._pages.decode_after(scope, token)
        async with self._database.connect() as conn:
            group_id = (await _group(conn, group)).id if group else None
            member_id = (await existing_user(conn, user_id)).id if user_id else None
            rows = await group_rows.list_memberships(
                conn, user_id=member_id, group_id=group_id, after=after, limit=limit + 1
            )
        return split_page(
            rows, limit, lambda last: self._pages.encode_after(scope, last.create_time, last.id)
        )

    async def add_permission(
        self, new: NewPermission, call: CallContext
    ) -> tuple[PermissionRecord, str]:
        """Grant a permission to a group; granting an existing grant returns it."""
        problems = Violations()
        _check_text(problems, "name", new.name, required=True)
        _check_text(problems, "table_name", new.table_name, required=False)
        _check_text(problems, "record_id", new.record_id, required=False)
        for field, value in (
            ("name", new.name),
            ("table_name", new.table_name),
            ("record_id", new.record_id),
        ):
            if len(value.encode("utf-8", "surrogatepass")) > _MAX_GRANT_FIELD_BYTES:
                problems.add(field, f"{field} must be at most {_MAX_GRANT_FIELD_BYTES} bytes")
        if problems:
            raise InvalidArgument(problems.items)

        async def grant(conn: Connection) -> tuple[PermissionRecord, str]:
            group = await _group(conn, new.group)
            fields = {"name": new.name, "table_name": new.table_name, "record_id": new.record_id}
            permission = await group_rows.insert_permission(
                conn, group=group, extra=new.extra, now=self._clock.now(), **fields
            )
            if permission is None:
                existing = await group_rows.find_permission(
                    conn,
                    group_id=group.id,
                    name=new.name,
                    table_name=new.table_name,
                    record_id=new.record_id,
                )
                if existing is None:
                    raise PermissionNotFound()
                permission = existing
            else:
                await self._events.record(
                    conn,
                    EventKind.PERMISSION_ADDED,
                    call,
                    values={"group": new.group, "name": new.name},
                )
            change = Change(permission_names=frozenset({new.name}))
            revision = await self._notices.publish(conn, change)
            return permission, revision

        return await self._database.transaction(grant)

    async def remove_permission(self, permission_id: str, call: CallContext) -> str:
        """Withdraw a grant."""
        parsed = parse_id(permission_id, PermissionNotFound)

        async def remove(conn: Connection) -> str:
            permission = await group_rows.find_permission(conn, permission_id=parsed)
            if permission is None or not await group_rows.delete_permission(conn, parsed):
                raise PermissionNotFound()
            await self._events.record(
                conn,
                EventKind.PERMISSION_REMOVED,
                call,
                values={"group": permission.group, "name": permission.name},
            )
            change = Change(permission_names=frozenset({permission.name}))
            return await self._notices.publish(conn, change)

        return await self._database.transaction(remove)

    async def list_permissions(
        self, *, group: str, user_id: str, size: int, token: str
    ) -> tuple[list[PermissionRecord], str]:
        """Grants of a group, or every grant a user holds through its groups."""
        if not user_id and not group:
            problems = Violations()
            problems.add("group", "group or user_id is required")
            raise InvalidArgument(problems.items)
        limit = page_size(size)
        scope = f"ListPermissions:{group}:{user_id}"
        after = self._pages.decode_after(scope, token)
        async with self._database.connect() as conn:
            group_id = (await _group(conn, group)).id if group else None
            holder = (await existing_user(conn, user_id)).id if user_id else None
            rows = await group_rows.list_permissions(
                conn, group_id=group_id, user_id=holder, after=after, limit=limit + 1
            )
        return split_page(
            rows, limit, lambda last: self._pages.encode_after(scope, last.create_time, last.id)
        )


async def _group(conn: Connection, name: str) -> GroupRecord:
    if not name or len(name) > _MAX_NAME or "\x00" in name:
        raise GroupNotFound()
    group = await group_rows.find_group(conn, name)
    if group is None:
        raise GroupNotFound()
    return group
