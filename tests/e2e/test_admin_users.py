"""AdminService: users, their states, paging, and the service keys that guard it."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.support.flows import PASSWORD, login, register
from tests.support.postgres import connect
from tests.support.rows import table_rows
from tests.support.rpc_errors import details_of, failure
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import access_service_pb2_grpc, admin_service_pb2_grpc, resources_pb2
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth


async def create(running: Running, email: str, **fields: Any) -> resources_pb2.User:
    reply = await running.admin.CreateUser(
        admin.CreateUserRequest(user=resources_pb2.User(email=email, **fields), password=PASSWORD)
    )
    user: resources_pb2.User = reply.user
    return user


async def test_create_get_lookup_update_delete(watchword: Running) -> None:
    user = await create(watchword, "Ada@Example.com", first_name="Ada")
    assert user.status == resources_pb2.USER_STATUS_ACTIVE
    got = await watchword.admin.GetUser(admin.GetUserRequest(user_id=user.id))
    assert got.user == user
    found = await watchword.admin.LookupUser(admin.LookupUserRequest(email="ada@example.COM"))
    assert found.user.id == user.id
    updated = await watchword.admin.UpdateUser(
        admin.UpdateUserRequest(
            user=resources_pb2.User(id=user.id, email="countess@example.com", last_name="L"),
            update_mask=field_mask_pb2.FieldMask(paths=["email", "last_name"]),
        )
    )
    assert (updated.user.email, updated.user.first_name) == ("countess@example.com", "Ada")
    assert await login(watchword, "countess@example.com")
    await watchword.admin.DeleteUser(admin.DeleteUserRequest(user_id=user.id))
    gone = await failure(watchword.admin.GetUser(admin.GetUserRequest(user_id=user.id)))
    assert (gone.code, gone.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


async def test_create_in_any_status_sends_no_session_and_no_mail(
    watchword: Running, database_url: str
) -> None:
    user = await create(
        watchword, "pending@example.com", status=resources_pb2.USER_STATUS_PENDING_APPROVAL
    )
    assert user.status == resources_pb2.USER_STATUS_PENDING_APPROVAL
    assert table_rows(database_url, "mail_outbox") == []


async def test_duplicates_and_unknowns(watchword: Running) -> None:
    await create(watchword, "ada@example.com")
    taken = await failure(create(watchword, "ADA@example.com"))
    assert (taken.code, taken.reason) == (grpc.StatusCode.ALREADY_EXISTS, "EMAIL_ALREADY_EXISTS")
    for call in (
        watchword.admin.GetUser(admin.GetUserRequest(user_id="not-an-id")),
        watchword.admin.LookupUser(admin.LookupUserRequest(email="nobody@example.com")),
        watchword.admin.BlockUser(admin.BlockUserRequest(user_id="")),
    ):
        missing = await failure(call)
        assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


async def test_update_refuses_unknown_paths_and_a_taken_email(watchword: Running) -> None:
    await create(watchword, "ada@example.com")
    bob = await create(watchword, "bob@example.com")
    taken = await failure(
        watchword.admin.UpdateUser(
            admin.UpdateUserRequest(
                user=resources_pb2.User(id=bob.id, email="Ada@example.com"),
                update_mask=field_mask_pb2.FieldMask(paths=["email"]),
            )
        )
    )
    assert taken.reason == "EMAIL_ALREADY_EXISTS"
    bad = await failure(
        watchword.admin.UpdateUser(
            admin.UpdateUserRequest(
                user=resources_pb2.User(id=bob.id),
                update_mask=field_mask_pb2.FieldMask(paths=["create_time"]),
            )
        )
    )
    assert set(bad.violations) == {"update_mask"}


async def test_disable_revokes_sessions_until_a_reset(watchword: Running) -> None:
    user_id, token = await register(watchword, "ada@example.com")
    await watchword.admin.DisableUser(admin.DisableUserRequest(user_id=user_id))
    dead = await failure(watchword.auth.Introspect(auth.IntrospectRequest(session_token=token)))
    assert dead.reason == "SESSION_INVALID"
    refused = await failure(login(watchword, "ada@example.com"))
    assert refused.reason == "ACCOUNT_DISABLED"


async def test_approve_turns_pending_approval_into_active(start_server: StartServer) -> None:
    running = await start_server(registration_approval=True)
    reply = await running.auth.Register(
        auth.RegisterRequest(
            email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
        )
    )
    assert reply.user.status == resources_pb2.USER_STATUS_PENDING_APPROVAL
    waiting = await failure(login(running, "ada@example.com"))
    assert waiting.reason == "ACCOUNT_PENDING_APPROVAL"
    approved = await running.admin.ApproveUser(admin.ApproveUserRequest(user_id=reply.user.id))
    assert approved.user.status == resources_pb2.USER_STATUS_ACTIVE
    assert await login(running, "ada@example.com")


async def test_revoke_sessions(watchword: Running) -> None:
    user_id, first = await register(watchword, "ada@example.com")
    second = await login(watchword, "ada@example.com")
    await watchword.admin.RevokeSessions(admin.RevokeSessionsRequest(user_id=user_id))
    for token in (first, second):
        dead = await failure(watchword.auth.Introspect(auth.IntrospectRequest(session_token=token)))
        assert dead.reason == "SESSION_INVALID"


async def test_250_users_in_three_pages_each_once(watchword: Running) -> None:
    await asyncio.gather(*(create(watchword, f"user{i}@example.com") for i in range(250)))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await watchword.admin.ListUsers(
            admin.ListUsersRequest(page_size=100, page_token=token)
        )
        pages += 1
        seen += [user.id for user in reply.users]
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 250


async def test_list_users_by_status_and_bad_tokens(watchword: Running) -> None:
    await create(watchword, "a@example.com")
    blocked = await create(watchword, "b@example.com", status=resources_pb2.USER_STATUS_BLOCKED)
    reply = await watchword.admin.ListUsers(
        admin.ListUsersRequest(status=resources_pb2.USER_STATUS_BLOCKED)
    )
    assert [user.id for user in reply.users] == [blocked.id]
    first = await watchword.admin.ListUsers(admin.ListUsersRequest(page_size=1))
    assert first.next_page_token
    forged = first.next_page_token[:-2] + (
        "AA" if not first.next_page_token.endswith("AA") else "BB"
    )
    for token in ("garbage", forged):
        bad = await failure(
            watchword.admin.ListUsers(admin.ListUsersRequest(page_size=1, page_token=token))
        )
        assert (bad.code, bad.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")
    # A token belongs to its query: it does not work with another filter.
    other = await failure(
        watchword.admin.ListUsers(
            admin.ListUsersRequest(
                page_size=1,
                page_token=first.next_page_token,
                status=resources_pb2.USER_STATUS_ACTIVE,
            )
        )
    )
    assert other.reason == "PAGE_TOKEN_INVALID"


async def test_service_keys_guard_access_and_admin(watchword: Running) -> None:
    plain_admin = admin_service_pb2_grpc.AdminServiceStub(watchword.channel)
    plain_access = access_service_pb2_grpc.AccessServiceStub(watchword.channel)
    request = admin.ListUsersRequest()
    missing = await failure(plain_admin.ListUsers(request))
    assert (missing.code, missing.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SERVICE_KEY_MISSING",
    )
    unknown = await failure(
        plain_admin.ListUsers(request, metadata=(("authorization", "Bearer wwk_made_up"),))
    )
    assert (unknown.code, unknown.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SERVICE_KEY_INVALID",
    )
    access_key = (("authorization", f"Bearer {watchword.access_key}"),)
    too_small = await failure(plain_admin.ListUsers(request, metadata=access_key))
    assert (too_small.code, too_small.reason) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "SCOPE_INSUFFICIENT",
    )
    check = access.HasPermissionRequest(group="g", name="n")
    assert not (await plain_access.HasPermission(check, metadata=access_key)).allowed
    admin_key = (("authorization", f"Bearer {watchword.admin_key}"),)
    assert not (await plain_access.HasPermission(check, metadata=admin_key)).allowed
    no_key = await failure(plain_access.HasPermission(check))
    assert no_key.reason == "SERVICE_KEY_MISSING"

    assert watchword.server.service_keys is not None
    for key in await watchword.server.service_keys.list():
        if key.scope == "access":
            await watchword.server.service_keys.revoke(key.name)
    revoked = await failure(plain_access.HasPermission(check, metadata=access_key))
    assert revoked.reason == "SERVICE_KEY_INVALID"
    # AuthService needs no key by default.
    await register(watchword, "ada@example.com")


async def test_auth_requires_key_when_configured(start_server: StartServer) -> None:
    running = await start_server(auth_requires_key=True)
    refused = await failure(register(running, "ada@example.com"))
    assert refused.reason == "SERVICE_KEY_MISSING"
    keyed = await running.auth.Register(
        auth.RegisterRequest(
            email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
        ),
        metadata=(("authorization", f"Bearer {running.access_key}"),),
    )
    assert keyed.session_token
    # The key is cached now: a call without it is refused all the same.
    again = await failure(register(running, "bob@example.com"))
    assert again.reason == "SERVICE_KEY_MISSING"


async def test_concurrent_calls_are_each_judged_by_their_own_key(watchword: Running) -> None:
    # The key gate decides per call, from that call's metadata: calls with a cached key
    # interleaved with calls with none, with a made-up one and with one of too small a scope.
    plain_access = access_service_pb2_grpc.AccessServiceStub(watchword.channel)
    plain_admin = admin_service_pb2_grpc.AdminServiceStub(watchword.channel)
    check = access.HasPermissionRequest(group="g", name="n")
    good = (("authorization", f"Bearer {watchword.access_key}"),)
    made_up = (("authorization", "Bearer wwk_made_up"),)
    await plain_access.HasPermission(check, metadata=good)  # the key is cached from here

    async def outcome(metadata: tuple[tuple[str, str], ...]) -> str:
        try:
            await plain_access.HasPermission(check, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            return details_of(error).reason
        return "answered"

    kinds = [good, (), made_up, good, good, ()] * 20
    outcomes = await asyncio.gather(*(outcome(metadata) for metadata in kinds))
    expected = {good: "answered", (): "SERVICE_KEY_MISSING", made_up: "SERVICE_KEY_INVALID"}
    assert outcomes == [expected[metadata] for metadata in kinds]
    too_small = await asyncio.gather(
        *(
            failure(plain_admin.ListUsers(admin.ListUsersRequest(), metadata=good))
            for _ in range(10)
        )
    )
    assert {error.reason for error in too_small} == {"SCOPE_INSUFFICIENT"}


async def test_the_key_is_checked_before_anything_else(start_server: StartServer) -> None:
    # A switched-off RPC and a stream refuse a caller without a key as every RPC does:
    # nothing about the deployment is told before the key is.
    running = await start_server(disabled_rpcs=["HasPermission"])
    plain_access = access_service_pb2_grpc.AccessServiceStub(running.channel)
    check = access.HasPermissionRequest(group="g", name="n")
    no_key = await failure(plain_access.HasPermission(check))
    assert (no_key.code, no_key.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SERVICE_KEY_MISSING")
    access_key = (("authorization", f"Bearer {running.access_key}"),)
    disabled = await failure(plain_access.HasPermission(check, metadata=access_key))
    assert (disabled.code, disabled.reason) == (grpc.StatusCode.UNIMPLEMENTED, "RPC_DISABLED")

    plain_admin = admin_service_pb2_grpc.AdminServiceStub(running.channel)

    async def first_event(metadata: tuple[tuple[str, str], ...]) -> None:
        async for _ in plain_admin.WatchEvents(admin.WatchEventsRequest(), metadata=metadata):
            return

    for metadata, reason in (((), "SERVICE_KEY_MISSING"), (access_key, "SCOPE_INSUFFICIENT")):
        refused = await failure(first_event(metadata))
        assert refused.reason == reason


@pytest.mark.postgres_only
async def test_database_holds_no_service_key_in_clear(
    watchword: Running, database_url: str
) -> None:
    with connect(database_url) as conn:
        dump = "\n".join(
            str(row[0]) for row in conn.execute("SELECT row_to_json(k)::text FROM service_keys k")
        )
    assert "test-admin" in dump
    for key in (watchword.admin_key, watchword.access_key):
        assert key.startswith("wwk_")
        assert key not in dump and key.removeprefix("wwk_") not in dump


async def test_a_key_s_last_use_is_written_once_a_minute_at_most(
    watchword: Running, database_url: str
) -> None:
    def last_used() -> list[object]:
        rows = table_rows(database_url, "service_keys", "scope", "last_used_time")
        return [row["last_used_time"] for row in rows if row["scope"] == "access"]

    assert watchword.server.domain is not None
    touches = watchword.server.domain.touches
    await touches.flush()
    assert last_used() == [None]  # made by the fixture, never used yet
    check = access.HasPermissionRequest(group="g", name="n")
    await watchword.access.HasPermission(check)
    await touches.flush()
    first = last_used()
    assert first[0] is not None
    watchword.clock.advance(3600)  # the stored time comes from the clock; the pace does not
    await watchword.access.HasPermission(check)
    await touches.flush()
    assert last_used() == first


async def test_admin_actions_write_events_with_the_key_as_origin(
    watchword: Running, database_url: str
) -> None:
    user = await create(watchword, "ada@example.com")
    await watchword.admin.BlockUser(admin.BlockUserRequest(user_id=user.id))
    rows = table_rows(database_url, "events", "kind", "origin", "description", order_by="id")
    assert [row["kind"] for row in rows] == ["user_created", "user_blocked"]
    assert all(row["origin"].startswith("admin:test-admin-") for row in rows)
    assert rows[1]["description"] == f"User {user.id} blocked by {rows[1]['origin']}"


async def test_any_status_but_active_ends_the_sessions_for_good(watchword: Running) -> None:
    # A session must not come back to life when an account returns to ACTIVE: whatever
    # took it out of ACTIVE (here a move back to PENDING_APPROVAL) ended its sessions.
    user_id, token = await register(watchword, "ada@example.com")
    await watchword.admin.UpdateUser(
        admin.UpdateUserRequest(
            user=resources_pb2.User(id=user_id, status=resources_pb2.USER_STATUS_PENDING_APPROVAL),
            update_mask=field_mask_pb2.FieldMask(paths=["status"]),
        )
    )
    await watchword.admin.ApproveUser(admin.ApproveUserRequest(user_id=user_id))
    refused = await failure(watchword.auth.Introspect(auth.IntrospectRequest(session_token=token)))
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SESSION_INVALID")
    # A fresh login works: the account itself is fine.
    assert await login(watchword, "ada@example.com")
