"""Queries on groups, memberships and permissions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword_server.model.records import GroupRecord, MembershipRecord, PermissionRecord
from watchword_server.storage.models import Group, Membership, Permission

__all__ = [
    "GroupTaken",
    "delete_group",
    "delete_membership",
    "delete_permission",
    "find_group",
    "find_membership",
    "find_permission",
    "insert_group",
    "insert_membership",
    "insert_permission",
    "list_groups",
    "list_memberships",
    "list_permissions",
]


class GroupTaken(Exception):
    """A group with this name exists already."""


_GROUP_COLUMNS = (Group.id, Group.name, Group.description, Group.create_time, Group.extra)
_MEMBERSHIP_COLUMNS = (
    Membership.id,
    Group.name.label("group"),
    Membership.user_id,
    Membership.create_time,
    Membership.extra,
)
_PERMISSION_COLUMNS = (
    Permission.id,
    Group.name.label("group"),
    Permission.name,
    Permission.table_name,
    Permission.record_id,
    Permission.create_time,
    Permission.extra,
)


def _group(row: Any) -> GroupRecord:
    return GroupRecord(row.id, row.name, row.description, row.create_time, dict(row.extra or {}))


def _membership(row: Any) -> MembershipRecord:
    return MembershipRecord(row.id, row.group, row.user_id, row.create_time, dict(row.extra or {}))


def _permission(row: Any) -> PermissionRecord:
    return PermissionRecord(
        row.id,
        row.group,
        row.name,
        row.table_name,
        row.record_id,
        row.create_time,
        dict(row.extra or {}),
    )


async def insert_group(
    conn: AsyncConnection, *, name: str, description: str, extra: dict[str, Any], now: datetime
) -> GroupRecord:
    """Create a group; raises GroupTaken when the name is in use."""
    row = GroupRecord(uuid.uuid4(), name, description, now, extra)
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(Group).values(
                    id=row.id, name=name, description=description, extra=extra, create_time=now
                )
            )
    except IntegrityError as error:
        raise GroupTaken(name) from error
    return row


async def find_group(conn: AsyncConnection, name: str) -> GroupRecord | None:
    """The group called ``name``."""
    result = await conn.execute(select(*_GROUP_COLUMNS).where(Group.name == name))
    row = result.one_or_none()
    return None if row is None else _group(row)


async def delete_group(conn: AsyncConnection, group_id: uuid.UUID) -> None:
    """Delete a group with its memberships and permissions (explicitly, not by cascade,
    so SQLite files made without foreign keys enforced come out right too)."""
    await conn.execute(delete(Membership).where(Membership.group_id == group_id))
    await conn.execute(delete(Permission).where(Permission.group_id == group_id))
    await conn.execute(delete(Group).where(Group.id == group_id))


async def list_groups(conn: AsyncConnection, *, after: str | None, limit: int) -> list[GroupRecord]:
    """Groups by name, after ``after``."""
    statement = select(*_GROUP_COLUMNS).order_by(Group.name).limit(limit)
    if after is not None:
        statement = statement.where(Group.name > after)
    return [_group(row) for row in await conn.execute(statement)]


async def find_membership(
    conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID
) -> MembershipRecord | None:
    """The membership of ``user_id`` in the group."""
    result = await conn.execute(
        select(*_MEMBERSHIP_COLUMNS)
        .join(Group, Group.id == Membership.group_id)
        .where(Membership.group_id == group_id, Membership.user_id == user_id)
    )
    row = result.one_or_none()
    return None if row is None else _membership(row)


async def insert_membership(
    conn: AsyncConnection,
    *,
    group: GroupRecord,
    user_id: uuid.UUID,
    extra: dict[str, Any],
    now: datetime,
) -> MembershipRecord | None:
    """Add a membership; returns None when it exists already (even by a racing call)."""
    row = MembershipRecord(uuid.uuid4(), group.name, user_id, now, extra)
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(Membership).values(
                    id=row.id, group_id=group.id, user_id=user_id, extra=extra, create_time=now
                )
            )
    except IntegrityError:
        return None
    return row


async def delete_membership(conn: AsyncConnection, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Remove a membership; returns whether there was one."""
    result = await conn.execute(
        delete(Membership).where(Membership.group_id == group_id, Membership.user_id == user_id)
    )
    return result.rowcount == 1


async def list_memberships(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID | None,
    group_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[MembershipRecord]:
    """Memberships of a user and/or a group, oldest first."""
    statement = (
        select(*_MEMBERSHIP_COLUMNS)
        .join(Group, Group.id == Membership.group_id)
        .order_by(Membership.create_time, Membership.id)
        .limit(limit)
    )
    if user_id is not None:
        statement = statement.where(Membership.user_id == user_id)
    if group_id is not None:
        statement = statement.where(Membership.group_id == group_id)
    if after is not None:
        statement = statement.where(tuple_(Membership.create_time, Membership.id) > after)
    return [_membership(row) for row in await conn.execute(statement)]


async def insert_permission(
    conn: AsyncConnection,
    *,
    group: GroupRecord,
    name: str,
    table_name: str,
    record_id: str,
    extra: dict[str, Any],
    now: datetime,
) -> PermissionRecord | None:
    """Add a grant; returns None when the same grant exists already."""
    row = PermissionRecord(uuid.uuid4(), group.name, name, table_name, record_id, now, extra)
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(Permission).values(
                    id=row.id,
                    group_id=group.id,
                    name=name,
                    table_name=table_name,
                    record_id=record_id,
                    extra=extra,
                    create_time=now,
                )
            )
    except IntegrityError:
        return None
    return row


async def find_permission(
    conn: AsyncConnection,
    *,
    permission_id: uuid.UUID | None = None,
    group_id: uuid.UUID | None = None,
    name: str = "",
    table_name: str = "",
    record_id: str = "",
) -> PermissionRecord | None:
    """A grant by id, or by its group and exact fields."""
    statement = select(*_PERMISSION_COLUMNS).join(Group, Group.id == Permission.group_id)
    if permission_id is not None:
        statement = statement.where(Permission.id == permission_id)
    else:
        statement = statement.where(
            Permission.group_id == group_id,
            Permission.name == name,
            Permission.table_name == table_name,
            Permission.record_id == record_id,
        )
    row = (await conn.execute(statement)).one_or_none()
    return None if row is None else _permission(row)


async def delete_permission(conn: AsyncConnection, permission_id: uuid.UUID) -> bool:
    """Remove a grant; returns whether there was one."""
    result = await conn.execute(delete(Permission).where(Permission.id == permission_id))
    return result.rowcount == 1


async def list_permissions(
    conn: AsyncConnection,
    *,
    group_id: uuid.UUID | None,
    user_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[PermissionRecord]:
    """Grants of a group, or of every group a user belongs to, oldest first."""
    statement = (
        select(*_PERMISSION_COLUMNS)
        .join(Group, Group.id == Permission.group_id)
        .order_by(Permission.create_time, Permission.id)
        .limit(limit)
    )
    if group_id is not None:
        statement = statement.where(Permission.group_id == group_id)
    if user_id is not None:
        statement = statement.join(
            Membership,
            and_(Membership.group_id == Permission.group_id, Membership.user_id == user_id),
        )
    if after is not None:
        statement = statement.where(tuple_(Permission.create_time, Permission.id) > after)
    return [_permission(row) for row in await conn.execute(statement)]
