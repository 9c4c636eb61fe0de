"""AccessService: membership and permission checks, including the auth module's examples."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.support.flows import login, register
from tests.support.rpc_errors import details_of
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import resources_pb2


async def member(running: Running, group: str, **subject: str) -> bool:
    reply = await running.access.HasMembership(access.HasMembershipRequest(group=group, **subject))
    return bool(reply.member)


async def allowed(
    running: Running, name: str, table_name: str = "", record_id: str = "", **subject: str
) -> bool:
    reply = await running.access.HasPermission(
        access.HasPermissionRequest(
            name=name, table_name=table_name, record_id=record_id, **subject
        )
    )
    return bool(reply.allowed)


async def test_membership_lifecycle(watchword: Running) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    bob, _ = await register(watchword, "bob@example.com")
    await watchword.admin.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name="administrators"))
    )
    await watchword.admin.AddMembership(
        admin.AddMembershipRequest(group="administrators", user_id=ada)
    )
    assert await member(watchword, "administrators", user_id=ada)
    assert not await member(watchword, "administrators", user_id=bob)
    assert not await member(watchword, "no-such-group", user_id=ada)
    await watchword.admin.RemoveMembership(
        admin.RemoveMembershipRequest(group="administrators", user_id=ada)
    )
    assert not await member(watchword, "administrators", user_id=ada)


async def test_permission_granted_to_a_group(watchword: Running) -> None:
    ada, ada_session = await register(watchword, "ada@example.com")
    bob, _ = await register(watchword, "bob@example.com")
    await watchword.admin.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name="administrators"))
    )
    await watchword.admin.AddMembership(
        admin.AddMembershipRequest(group="administrators", user_id=ada)
    )
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="administrators", name="ban_users")
    )
    assert await allowed(watchword, "ban_users", user_id=ada)
    assert await allowed(watchword, "ban_users", session_token=ada_session)
    assert await allowed(watchword, "ban_users", group="administrators")
    assert not await allowed(watchword, "ban_users", user_id=bob)
    assert not await allowed(watchword, "edit_users", user_id=ada)


async def grant(running: Running, table_name: str, record_id: str) -> str:
    await running.admin.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name="writers"))
    )
    user, _ = await register(running, "ada@example.com")
    await running.admin.AddMembership(admin.AddMembershipRequest(group="writers", user_id=user))
    await running.admin.AddPermission(
        admin.AddPermissionRequest(
            group="writers", name="write", table_name=table_name, record_id=record_id
        )
    )
    return user


async def test_grant_on_one_record(watchword: Running) -> None:
    user = await grant(watchword, "Preference", "42")
    assert await allowed(watchword, "write", "Preference", "42", user_id=user)
    assert not await allowed(watchword, "write", "Preference", "43", user_id=user)
    assert not await allowed(watchword, "write", "Preference", "", user_id=user)
    assert not await allowed(watchword, "write", "Other", "42", user_id=user)


async def test_grant_on_a_whole_table(watchword: Running) -> None:
    user = await grant(watchword, "Preference", "")
    assert await allowed(watchword, "write", "Preference", "42", user_id=user)
    assert await allowed(watchword, "write", "Preference", "", user_id=user)
    assert not await allowed(watchword, "write", "Other", "42", user_id=user)
    assert not await allowed(watchword, "write", "", "", user_id=user)


async def test_grant_everywhere(watchword: Running) -> None:
    user = await grant(watchword, "", "")
    assert await allowed(watchword, "write", "Preference", "42", user_id=user)
    assert await allowed(watchword, "write", "Other", "", user_id=user)
    assert await allowed(watchword, "write", "", "", user_id=user)
    assert not await allowed(watchword, "read", "", "", user_id=user)


async def test_block_kills_sessions_and_checks_and_allow_restores_checks(
    watchword: Running,
) -> None:
    user = await grant(watchword, "", "")
    token = await login(watchword, "ada@example.com")
    await watchword.admin.BlockUser(admin.BlockUserRequest(user_id=user))
    assert not await allowed(watchword, "write", user_id=user)
    assert not await member(watchword, "writers", user_id=user)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await allowed(watchword, "write", session_token=token)
    assert details_of(caught.value).reason == "SESSION_INVALID"
    await watchword.admin.AllowUser(admin.AllowUserRequest(user_id=user))
    assert await allowed(watchword, "write", user_id=user)
    assert await member(watchword, "writers", user_id=user)
    with pytest.raises(grpc.aio.AioRpcError):  # the old session stays dead
        await allowed(watchword, "write", session_token=token)


@pytest.mark.parametrize(
    ("request_fields", "code", "reason"),
    [
        ({"group": "g"}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        ({"user_id": "nobody", "group": "g"}, grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND"),
        (
            {"user_id": "00000000-0000-0000-0000-000000000000", "group": "g"},
            grpc.StatusCode.NOT_FOUND,
            "USER_NOT_FOUND",
        ),
        (
            {"session_token": "expired-or-made-up", "group": "g"},
            grpc.StatusCode.UNAUTHENTICATED,
            "SESSION_INVALID",
        ),
    ],
)
async def test_bad_membership_checks(
    watchword: Running, request_fields: dict[str, Any], code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchword.access.HasMembership(access.HasMembershipRequest(**request_fields))
    details = details_of(caught.value)
    assert (details.code, details.reason) == (code, reason)


async def test_a_permission_check_needs_a_name(watchword: Running) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchword.access.HasPermission(access.HasPermissionRequest(group="g"))
    assert set(details_of(caught.value).violations) == {"name"}


async def test_expired_session_is_session_invalid_for_checks(watchword: Running) -> None:
    _, token = await register(watchword, "ada@example.com")
    assert not await member(watchword, "g", session_token=token)
    watchword.clock.advance(3601)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await member(watchword, "g", session_token=token)
    assert details_of(caught.value).reason == "SESSION_INVALID"
