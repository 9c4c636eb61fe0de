"""AdminService: groups, memberships and permissions."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import struct_pb2

from tests.support.flows import register
from tests.support.rpc_errors import failure
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import resources_pb2


async def make_group(running: Running, name: str, **extra: Any) -> resources_pb2.Group:
    values = struct_pb2.Struct()
    values.update(extra)
    reply = await running.admin.CreateGroup(
        admin.CreateGroupRequest(
            group=resources_pb2.Group(name=name, description=f"the {name}", extra=values)
        )
    )
    group: resources_pb2.Group = reply.group
    return group


async def test_groups(watchword: Running) -> None:
    created = await make_group(watchword, "editors", color="blue")
    assert dict(created.extra) == {"color": "blue"}
    got = await watchword.admin.GetGroup(admin.GetGroupRequest(group="editors"))
    assert got.group == created
    taken = await failure(make_group(watchword, "editors"))
    assert (taken.code, taken.reason) == (grpc.StatusCode.ALREADY_EXISTS, "GROUP_ALREADY_EXISTS")
    await make_group(watchword, "Editors")  # names are case-sensitive
    missing = await failure(watchword.admin.GetGroup(admin.GetGroupRequest(group="nope")))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "GROUP_NOT_FOUND")
    empty = await failure(make_group(watchword, ""))
    assert set(empty.violations) == {"group.name"}


async def test_list_groups_pages_by_name(watchword: Running) -> None:
    for name in ("c", "a", "b", "d", "e"):
        await make_group(watchword, name)
    names: list[str] = []
    token = ""
    while True:
        reply = await watchword.admin.ListGroups(
            admin.ListGroupsRequest(page_size=2, page_token=token)
        )
        names += [group.name for group in reply.groups]
        token = reply.next_page_token
        if not token:
            break
    assert names == ["a", "b", "c", "d", "e"]


async def test_memberships(watchword: Running) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    bob, _ = await register(watchword, "bob@example.com")
    await make_group(watchword, "editors")
    await make_group(watchword, "readers")
    first = await watchword.admin.AddMembership(
        admin.AddMembershipRequest(group="editors", user_id=ada)
    )
    again = await watchword.admin.AddMembership(
        admin.AddMembershipRequest(group="editors", user_id=ada)
    )
    assert again.membership == first.membership  # idempotent
    for group, user in (("readers", ada), ("readers", bob)):
        await watchword.admin.AddMembership(admin.AddMembershipRequest(group=group, user_id=user))
    by_user = await watchword.admin.ListMemberships(admin.ListMembershipsRequest(user_id=ada))
    assert sorted(m.group for m in by_user.memberships) == ["editors", "readers"]
    by_group = await watchword.admin.ListMemberships(admin.ListMembershipsRequest(group="readers"))
    assert sorted(m.user_id for m in by_group.memberships) == sorted([ada, bob])
    neither = await failure(watchword.admin.ListMemberships(admin.ListMembershipsRequest()))
    assert neither.code == grpc.StatusCode.INVALID_ARGUMENT
    gone = await failure(
        watchword.admin.RemoveMembership(
            admin.RemoveMembershipRequest(group="editors", user_id=bob)
        )
    )
    assert gone.reason == "MEMBERSHIP_NOT_FOUND"
    no_group = await failure(
        watchword.admin.AddMembership(admin.AddMembershipRequest(group="nope", user_id=ada))
    )
    assert no_group.reason == "GROUP_NOT_FOUND"
    no_user = await failure(
        watchword.admin.AddMembership(admin.AddMembershipRequest(group="editors", user_id="x"))
    )
    assert no_user.reason == "USER_NOT_FOUND"


async def test_permissions_listed_by_group_and_by_user(watchword: Running) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    await make_group(watchword, "editors")
    await make_group(watchword, "readers")
    for group in ("editors", "readers"):
        await watchword.admin.AddMembership(admin.AddMembershipRequest(group=group, user_id=ada))
    write = await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="editors", name="write", table_name="Post")
    )
    same = await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="editors", name="write", table_name="Post")
    )
    assert same.permission == write.permission
    await watchword.admin.AddPermission(admin.AddPermissionRequest(group="readers", name="read"))
    by_group = await watchword.admin.ListPermissions(admin.ListPermissionsRequest(group="editors"))
    assert [(p.name, p.table_name) for p in by_group.permissions] == [("write", "Post")]
    by_user = await watchword.admin.ListPermissions(admin.ListPermissionsRequest(user_id=ada))
    assert sorted(p.name for p in by_user.permissions) == ["read", "write"]

    await watchword.admin.RemovePermission(
        admin.RemovePermissionRequest(permission_id=write.permission.id)
    )
    check = access.HasPermissionRequest(user_id=ada, name="write", table_name="Post")
    assert not (await watchword.access.HasPermission(check)).allowed
    gone = await failure(
        watchword.admin.RemovePermission(
            admin.RemovePermissionRequest(permission_id=write.permission.id)
        )
    )
    assert (gone.code, gone.reason) == (grpc.StatusCode.NOT_FOUND, "PERMISSION_NOT_FOUND")


async def test_delete_group_removes_its_memberships_and_permissions(watchword: Running) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    await make_group(watchword, "editors")
    await watchword.admin.AddMembership(admin.AddMembershipRequest(group="editors", user_id=ada))
    await watchword.admin.AddPermission(admin.AddPermissionRequest(group="editors", name="write"))
    await watchword.admin.DeleteGroup(admin.DeleteGroupRequest(group="editors"))
    memberships = await watchword.admin.ListMemberships(admin.ListMembershipsRequest(user_id=ada))
    assert list(memberships.memberships) == []
    permissions = await watchword.admin.ListPermissions(admin.ListPermissionsRequest(user_id=ada))
    assert list(permissions.permissions) == []
    # A new group of the same name starts empty.
    await make_group(watchword, "editors")
    check = access.HasMembershipRequest(user_id=ada, group="editors")
    assert not (await watchword.access.HasMembership(check)).member


async def test_a_grant_too_big_for_its_index_is_invalid_argument(watchword: Running) -> None:
    # 255 four-byte characters in each of the three fields: within the character limits,
    # but the grant's unique index entry would not fit in PostgreSQL's.
    await watchword.admin.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name="wide"))
    )
    wide = "😀" * 255
    refused = await failure(
        watchword.admin.AddPermission(
            admin.AddPermissionRequest(group="wide", name=wide, table_name=wide, record_id=wide)
        )
    )
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(refused.violations) == {"name", "table_name", "record_id"}
    widest = "😀" * 200  # 800 bytes each: fits
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="wide", name=widest, table_name=widest, record_id=widest)
    )
    check = access.HasPermissionRequest(
        group="wide", name=widest, table_name=widest, record_id=widest
    )
    assert (await watchword.access.HasPermission(check)).allowed
