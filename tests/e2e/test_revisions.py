"""Revisions: every AdminService write returns the revision it committed at, and a check
given ``min_revision`` answers from state at least that new, even where the change's notice
has not arrived yet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.support.flows import PASSWORD, register
from tests.support.rpc_errors import failure
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import resources_pb2
from watchword_server.domain.access.changes import Change


async def grant_edit(running: Running, user_id: str, group: str) -> str:
    await running.admin.CreateGroup(admin.CreateGroupRequest(group=resources_pb2.Group(name=group)))
    await running.admin.AddMembership(admin.AddMembershipRequest(group=group, user_id=user_id))
    granted = await running.admin.AddPermission(
        admin.AddPermissionRequest(group=group, name="edit", table_name="posts")
    )
    return str(granted.permission.id)


def edit_check(user_id: str, min_revision: str = "") -> access.HasPermissionRequest:
    return access.HasPermissionRequest(
        user_id=user_id, name="edit", table_name="posts", record_id="1", min_revision=min_revision
    )


async def every_write_revision(running: Running) -> list[str]:
    """Make one of each AdminService write; returns their revisions in order."""
    stub = running.admin
    created = await stub.CreateUser(
        admin.CreateUserRequest(
            user=resources_pb2.User(email="rev@example.com", first_name="R", last_name="V"),
            password=PASSWORD,
        )
    )
    user_id = created.user.id
    group = await stub.CreateGroup(admin.CreateGroupRequest(group=resources_pb2.Group(name="g")))
    added = await stub.AddMembership(admin.AddMembershipRequest(group="g", user_id=user_id))
    granted = await stub.AddPermission(admin.AddPermissionRequest(group="g", name="read"))
    replies: list[Any] = [
        created,
        group,
        added,
        granted,
        await stub.UpdateUser(
            admin.UpdateUserRequest(
                user=resources_pb2.User(id=user_id, first_name="Q"),
                update_mask=field_mask_pb2.FieldMask(paths=["first_name"]),
            )
        ),
        await stub.DisableUser(admin.DisableUserRequest(user_id=user_id)),
        await stub.AllowUser(admin.AllowUserRequest(user_id=user_id)),
        await stub.BlockUser(admin.BlockUserRequest(user_id=user_id)),
        await stub.AllowUser(admin.AllowUserRequest(user_id=user_id)),
        await stub.ApproveUser(admin.ApproveUserRequest(user_id=user_id)),
        await stub.RevokeSessions(admin.RevokeSessionsRequest(user_id=user_id)),
        await stub.RemovePermission(
            admin.RemovePermissionRequest(permission_id=granted.permission.id)
        ),
        await stub.RemoveMembership(admin.RemoveMembershipRequest(group="g", user_id=user_id)),
        await stub.DeleteGroup(admin.DeleteGroupRequest(group="g")),
        await stub.DeleteUser(admin.DeleteUserRequest(user_id=user_id)),
    ]
    return [str(reply.revision) for reply in replies]


async def test_every_admin_write_returns_a_revision(watchword: Running) -> None:
    revisions = await every_write_revision(watchword)
    assert all(revisions), revisions
    # Distinct writes, distinct revisions.
    assert len(set(revisions)) == len(revisions)


async def test_every_admin_write_returns_a_revision_on_sqlite(
    start_sqlite_server: StartServer,
) -> None:
    running = await start_sqlite_server()
    revisions = await every_write_revision(running)
    assert all(revisions) and len(set(revisions)) == len(revisions), revisions


@pytest.fixture
async def start_sqlite_server(start_server: StartServer, tmp_path: Path) -> StartServer:
    async def start(**overrides: Any) -> Running:
        url = f"sqlite+aiosqlite:///{tmp_path / 'watchword.db'}"
        return await start_server(database_url=url, **overrides)

    return start


@pytest.mark.postgres_only
async def test_a_check_with_the_revision_of_an_unheard_change_reads_it(
    start_server: StartServer,
) -> None:
    writer = await start_server()
    reader = await start_server()
    user_id, _ = await register(writer, "ada@example.com")
    permission_id = await grant_edit(writer, user_id, "editors")
    assert (await reader.access.HasPermission(edit_check(user_id))).allowed
    assert (await reader.access.HasPermission(edit_check(user_id))).allowed  # now cached

    # The reader hears no more changes for now, as if the notice were still on its way.
    assert reader.server.domain is not None
    cache = reader.server.domain.check_cache
    unheard: list[tuple[Change, str]] = []
    cache.apply = lambda change, revision: unheard.append((change, revision))  # type: ignore[method-assign]

    removed = await writer.admin.RemovePermission(
        admin.RemovePermissionRequest(permission_id=permission_id)
    )
    # Without the revision the reader still answers from its cache...
    assert (await reader.access.HasPermission(edit_check(user_id))).allowed
    # ...with it, from the database.
    fresh = await reader.access.HasPermission(edit_check(user_id, removed.revision))
    assert fresh.allowed is False
    membership = await reader.access.HasMembership(
        access.HasMembershipRequest(user_id=user_id, group="editors", min_revision=removed.revision)
    )
    assert membership.member is True

    # Once the notice is heard, the cache serves the new state with that revision.
    del cache.apply
    for change, revision in unheard:
        cache.apply(change, revision)
    assert [revision for _, revision in unheard] == [removed.revision]
    again = await reader.access.HasPermission(edit_check(user_id, removed.revision))
    assert again.allowed is False
    assert again.revision == removed.revision


async def test_a_check_says_which_revision_it_reflects(watchword: Running) -> None:
    user_id, _ = await register(watchword, "bob@example.com")
    await grant_edit(watchword, user_id, "editors")
    blocked = await watchword.admin.BlockUser(admin.BlockUserRequest(user_id=user_id))
    reply = await watchword.access.HasPermission(edit_check(user_id))
    assert reply.allowed is False
    assert reply.revision == blocked.revision
    # Passing it back is always accepted.
    again = await watchword.access.HasPermission(edit_check(user_id, reply.revision))
    assert again.allowed is False


@pytest.mark.parametrize("bad", ["nonsense", "x", "x12345678901234567890123", "s-1", "x1 "])
async def test_a_malformed_min_revision_is_invalid_argument(watchword: Running, bad: str) -> None:
    user_id, _ = await register(watchword, "eve@example.com")
    details = await failure(watchword.access.HasPermission(edit_check(user_id, bad)))
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "min_revision" in details.violations
    details = await failure(
        watchword.access.HasMembership(
            access.HasMembershipRequest(user_id=user_id, group="g", min_revision=bad)
        )
    )
    assert "min_revision" in details.violations
