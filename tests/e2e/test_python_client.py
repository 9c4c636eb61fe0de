"""The Python client (``AsyncClient`` and ``Client``) against a real server.

Tests that take the ``client``, ``admin`` or ``access`` fixture run once per client: the
asyncio one and the blocking one generated from it (``tests/support/clients.py``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import grpc
import pyotp
import pytest
from google.protobuf import json_format

from tests.support.clients import FLAVOURS, open_client
from tests.support.flows import PASSWORD
from tests.support.recording import Recorder
from tests.support.servers import Running, StartServer
from watchword import (
    AlreadyExists,
    AsyncClient,
    Cancelled,
    CheckResult,
    Client,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    MembershipCheck,
    NotFound,
    PermissionCheck,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    WatchwordError,
    from_rpc_error,
    from_status,
)
from watchword.auth.v1 import access_service_pb2, admin_service_pb2, auth_service_pb2, resources_pb2


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """Which client the test body runs against."""
    return str(request.param)


@pytest.fixture
async def client(watchword: Running, flavour: str) -> AsyncIterator[AsyncClient]:
    """A client without a service key (AuthService needs none)."""
    client = await open_client(flavour, watchword.address)
    yield client
    await client.close()


@pytest.fixture
async def admin(watchword: Running, flavour: str) -> AsyncIterator[AsyncClient]:
    client = await open_client(flavour, watchword.address, service_key=watchword.admin_key)
    yield client
    await client.close()


@pytest.fixture
async def access(watchword: Running, flavour: str) -> AsyncIterator[AsyncClient]:
    client = await open_client(flavour, watchword.address, service_key=watchword.access_key)
    yield client
    await client.close()


async def _user(client: AsyncClient, email: str) -> tuple[str, str]:
    """Register an active user; returns ``(user_id, session_token)``."""
    reply = await client.register(email=email, password=PASSWORD, first_name="A", last_name="B")
    return reply.user.id, reply.session_token


async def test_register_authenticate_introspect_logout(client: AsyncClient) -> None:
    registered = await client.register(
        email="ada@example.com", password=PASSWORD, first_name="Ada", last_name="Lovelace"
    )
    assert registered.user.status == resources_pb2.USER_STATUS_ACTIVE
    assert registered.session_token

    login = await client.authenticate(email="ADA@example.com", password=PASSWORD, remember=True)
    assert login.user.id == registered.user.id
    seen = await client.introspect(session_token=login.session_token)
    assert seen.user.email == "ada@example.com"
    assert (await client.get_profile(session_token=login.session_token)).first_name == "Ada"

    await client.logout(session_token=login.session_token)
    with pytest.raises(Unauthenticated) as caught:
        await client.introspect(session_token=login.session_token)
    assert caught.value.reason == "SESSION_INVALID"
    assert caught.value.domain == "watchword.auth.v1"


async def test_profile_and_password_flows(client: AsyncClient) -> None:
    _, token = await _user(client, "ada@example.com")
    updated = await client.update_profile(
        session_token=token,
        user=resources_pb2.User(first_name="Augusta"),
        update_mask=["first_name"],
    )
    assert (updated.first_name, updated.last_name) == ("Augusta", "B")

    with pytest.raises(InvalidArgument) as caught:
        await client.change_password(
            session_token=token, old_password="not it at all", new_password="a new password"
        )
    assert caught.value.reason == "PASSWORD_INCORRECT"
    assert caught.value.violation_fields == {"old_password"}
    await client.change_password(
        session_token=token, old_password=PASSWORD, new_password="a new password"
    )
    await client.authenticate(email="ada@example.com", password="a new password")
    await client.request_password_reset(email="nobody@example.com")  # always OK
    with pytest.raises(InvalidArgument) as bad_key:
        await client.reset_password(reset_key="nope", new_password="another password")
    assert bad_key.value.reason == "RESET_KEY_INVALID"


async def test_totp_second_factor(
    watchword: Running, client: AsyncClient, admin: AsyncClient
) -> None:
    user_id, token = await _user(client, "ada@example.com")
    enrollment = await client.enroll_totp(session_token=token)
    app = pyotp.TOTP(enrollment.secret)
    now = watchword.clock.now()
    codes = await client.confirm_totp(session_token=token, code=app.at(now))
    assert len(codes) == 10
    started = await client.authenticate(email="ada@example.com", password=PASSWORD)
    assert not started.session_token
    with pytest.raises(Unauthenticated) as replayed:
        await client.complete_second_factor(
            challenge=started.second_factor_challenge, totp_code=app.at(now)
        )
    assert replayed.value.reason == "SECOND_FACTOR_INVALID"
    done = await client.complete_second_factor(
        challenge=started.second_factor_challenge, totp_code=app.at(now + timedelta(seconds=30))
    )
    assert done.user.id == user_id
    watchword.clock.advance(60)
    new_codes = await client.regenerate_recovery_codes(
        session_token=token, code=app.at(watchword.clock.now())
    )
    assert not set(new_codes) & set(codes)
    started = await client.authenticate(email="ada@example.com", password=PASSWORD)
    await client.complete_second_factor(
        challenge=started.second_factor_challenge, recovery_code=new_codes[0]
    )
    factors = await admin.get_second_factors(user_id=user_id)
    assert list(factors.methods) == [
        resources_pb2.SECOND_FACTOR_METHOD_TOTP,
        resources_pb2.SECOND_FACTOR_METHOD_RECOVERY_CODE,
    ]
    await client.disable_totp(session_token=token, password=PASSWORD)
    assert list((await admin.get_second_factors(user_id=user_id)).methods) == []
    await client.enroll_totp(session_token=token)  # unconfirmed: an administrator removes it
    assert (await admin.reset_second_factors(user_id=user_id)).id == user_id


async def test_wrong_password_is_unauthenticated_with_the_configured_message(
    start_server: StartServer,
) -> None:
    running = await start_server(messages={"login_invalid": "Wrong e-mail or password, sorry"})
    async with AsyncClient(running.address) as client:
        await _user(client, "ada@example.com")
        with pytest.raises(Unauthenticated) as caught:
            await client.authenticate(email="ada@example.com", password="not the password")
    error = caught.value
    assert isinstance(error, WatchwordError)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "INVALID_CREDENTIALS"
    assert error.message == "Wrong e-mail or password, sorry"
    assert error.violations == ()
    assert isinstance(error.__cause__, grpc.RpcError)
    assert "INVALID_CREDENTIALS" in str(error)


async def test_short_password_is_a_violation_on_password(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.register(
            email="ada@example.com", password="short", first_name="A", last_name="B"
        )
    assert caught.value.violation_fields == {"password"}
    assert all(isinstance(v, FieldViolation) for v in caught.value.violations)
    assert caught.value.violations[0].description


async def test_access_checks_with_keys(
    client: AsyncClient, admin: AsyncClient, access: AsyncClient
) -> None:
    ada, token = await _user(client, "ada@example.com")
    bob, _ = await _user(client, "bob@example.com")
    await admin.create_group(name="editors", description="They edit", extra={"floor": 3})
    await admin.add_membership(group="editors", user_id=ada)
    await admin.add_permission(group="editors", name="write", table_name="Post")

    assert await access.has_membership(group="editors", user_id=ada)
    assert await access.has_membership(group="editors", session_token=token)
    assert not await access.has_membership(group="editors", user_id=bob)
    assert await access.has_permission(name="write", table_name="Post", record_id="7", user_id=ada)
    assert await access.has_permission(name="write", table_name="Post", session_token=token)
    assert await access.has_permission(name="write", table_name="Post", group="editors")
    assert not await access.has_permission(name="write", table_name="Post", user_id=bob)
    assert not await access.has_permission(name="delete", table_name="Post", user_id=ada)

    with pytest.raises(ValueError, match="exactly one"):
        await access.has_membership(group="editors")
    with pytest.raises(ValueError, match="exactly one"):
        await access.has_permission(name="write", user_id=ada, group="editors")
    with pytest.raises(Unauthenticated) as caught:
        await access.has_membership(group="editors", session_token="not-a-session")
    assert caught.value.reason == "SESSION_INVALID"


async def test_batch_check_answers_each_check_in_its_place(
    watchword: Running, client: AsyncClient, admin: AsyncClient, access: AsyncClient
) -> None:
    ada, token = await _user(client, "ada@example.com")
    bob, _ = await _user(client, "bob@example.com")
    await admin.create_group(name="editors")
    await admin.add_membership(group="editors", user_id=ada)
    await admin.add_permission(group="editors", name="write", table_name="Post")

    results = await access.batch_check(
        checks=[
            MembershipCheck("editors", user_id=ada),
            MembershipCheck("editors", session_token="not-a-session"),
            PermissionCheck("write", "Post", "7", session_token=token),
            MembershipCheck("", user_id=ada),  # refused: no group
            MembershipCheck("editors", user_id=bob),
            PermissionCheck("write", "Post", group="editors"),
            PermissionCheck("write", "Post", user_id=str(uuid.uuid4())),
        ]
    )
    assert all(isinstance(result, CheckResult) for result in results)
    assert [result.allowed for result in results] == [True, False, True, False, False, True, False]
    assert [type(result.error).__name__ for result in results] == [
        "NoneType",
        "Unauthenticated",
        "NoneType",
        "InvalidArgument",
        "NoneType",
        "NoneType",
        "NotFound",
    ]
    invalid = results[1].error
    assert isinstance(invalid, Unauthenticated)
    assert (invalid.reason, invalid.domain) == ("SESSION_INVALID", "watchword.auth.v1")
    assert invalid.message  # the configured text, as for a failed single call
    refused = results[3].error
    assert isinstance(refused, InvalidArgument)
    assert refused.violation_fields == {"group"}
    unknown = results[6].error
    assert unknown is not None and unknown.reason == "USER_NOT_FOUND"
    assert all(isinstance(result.revision, str) for result in results)

    # A Check with neither kind (the typed API cannot make one) is an error of its own too,
    # and from_status decodes the raw stub's results the same way.
    reply = await watchword.access.BatchCheck(
        access_service_pb2.BatchCheckRequest(
            checks=[
                access_service_pb2.Check(),
                access_service_pb2.Check(
                    membership=access_service_pb2.HasMembershipRequest(group="editors", user_id=ada)
                ),
            ]
        )
    )
    empty = from_status(reply.results[0].error)
    assert isinstance(empty, InvalidArgument)
    assert empty.violation_fields == {"kind"}
    assert reply.results[1].allowed and not reply.results[1].HasField("error")


async def test_batch_check_takes_up_to_100_checks(watchword: Running, client: AsyncClient) -> None:
    ada, _ = await _user(client, "ada@example.com")
    recorder = Recorder()
    channel = recorder.channel(watchword.address)
    async with AsyncClient("ignored", channel=channel, service_key=watchword.access_key) as access:
        checks = [PermissionCheck(f"p{n}", user_id=ada) for n in range(101)]
        results = await access.batch_check(checks=checks[:100])
        assert len(results) == 100
        assert all(result.error is None and not result.allowed for result in results)
        assert recorder.methods == ["AccessService/BatchCheck"]
        with pytest.raises(ValueError, match="at most 100 checks, got 101"):
            await access.batch_check(checks=checks)
        assert await access.batch_check(checks=[]) == []
        assert recorder.methods == ["AccessService/BatchCheck"]  # neither made a call
    await channel.close()

    # The server refuses more than 100 too, as the whole call's error.
    request = access_service_pb2.BatchCheckRequest(
        checks=[
            access_service_pb2.Check(
                permission=access_service_pb2.HasPermissionRequest(name="p", user_id=ada)
            )
        ]
        * 101
    )
    with pytest.raises(grpc.RpcError) as caught:
        await watchword.access.BatchCheck(request)
    error = from_rpc_error(caught.value)
    assert isinstance(error, InvalidArgument)
    assert error.violation_fields == {"checks"}


def _sent_revisions(recorder: Recorder) -> list[str]:
    """The min_revision of every check recorded (each item of a batch in turn)."""
    sent: list[str] = []
    for call in recorder.calls:
        if call.method in ("AccessService/HasMembership", "AccessService/HasPermission"):
            sent.append(call.request.min_revision)
        elif call.method == "AccessService/BatchCheck":
            for check in call.request.checks:
                sent.append(getattr(check, str(check.WhichOneof("kind"))).min_revision)
    return sent


async def test_checks_read_the_clients_own_writes(
    watchword: Running, start_server: StartServer, client: AsyncClient
) -> None:
    ada, _ = await _user(client, "ada@example.com")
    recorder = Recorder()
    channel = recorder.channel(watchword.address)
    admin = AsyncClient("ignored", channel=channel, service_key=watchword.admin_key)
    assert admin.last_revision == ""
    assert await admin.has_membership(group="editors", user_id=ada) is False
    assert _sent_revisions(recorder) == [""]  # no write yet: any cached answer will do

    await admin.create_group(name="editors")
    await admin.add_membership(group="editors", user_id=ada)
    added = admin.last_revision
    assert added
    recorder.calls.clear()
    assert await admin.has_membership(group="editors", user_id=ada) is True
    assert _sent_revisions(recorder) == [added]

    await admin.block_user(user_id=ada)
    blocked = admin.last_revision
    assert blocked and blocked != added
    recorder.calls.clear()
    assert await admin.has_membership(group="editors", user_id=ada) is False
    results = await admin.batch_check(
        checks=[
            MembershipCheck("editors", user_id=ada),
            MembershipCheck("editors", user_id=ada, min_revision=""),
            PermissionCheck("read", user_id=ada, min_revision=added),
        ]
    )
    assert [(result.allowed, result.error) for result in results] == [(False, None)] * 3
    assert not await admin.has_permission(name="read", user_id=ada, min_revision="")
    # The latest write by default; an explicit argument ("" for none) wins.
    assert _sent_revisions(recorder) == [blocked, blocked, "", added, ""]

    # Another process of the deployment: its answers, cached before a write, give way to a
    # min_revision passed along from the writing client.
    other = await start_server()
    async with AsyncClient(other.address, service_key=other.access_key) as elsewhere:
        assert not await elsewhere.has_membership(group="editors", user_id=ada)  # now cached
        await admin.allow_user(user_id=ada)
        assert await elsewhere.has_membership(
            group="editors", user_id=ada, min_revision=admin.last_revision
        )
        assert elsewhere.last_revision == ""  # checks are no writes

    # A client may opt out; its writes still tell their revision.
    recorder.calls.clear()
    quiet = AsyncClient(
        "ignored", channel=channel, service_key=watchword.admin_key, read_your_writes=False
    )
    await quiet.remove_membership(group="editors", user_id=ada)
    assert quiet.last_revision and quiet.last_revision != admin.last_revision
    assert not await quiet.has_membership(group="editors", user_id=ada)
    assert not await quiet.has_permission(
        name="x", group="editors", min_revision=quiet.last_revision
    )
    assert _sent_revisions(recorder) == ["", quiet.last_revision]
    with pytest.raises(ValueError, match="read_your_writes"):
        AsyncClient(watchword.address, read_your_writes=-1)
    await channel.close()


WRITES = {
    method.name
    for method in admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].methods
    if "revision" in method.output_type.fields_by_name
}


async def test_every_admin_write_notes_its_revision(watchword: Running) -> None:
    recorder = Recorder()
    channel = recorder.channel(watchword.address)
    admin = AsyncClient("ignored", channel=channel, service_key=watchword.admin_key)
    seen: list[str] = []

    def noted() -> None:
        call = recorder.calls[-1]
        assert call.response.revision, call.method
        assert admin.last_revision == call.response.revision, call.method
        seen.append(call.method.removeprefix("AdminService/"))

    pending = resources_pb2.User(
        email="ada@example.com", status=resources_pb2.USER_STATUS_PENDING_APPROVAL
    )
    ada = (await admin.create_user(user=pending, password=PASSWORD)).id
    noted()
    await admin.approve_user(user_id=ada)
    noted()
    await admin.update_user(
        user=resources_pb2.User(id=ada, first_name="A"), update_mask=["first_name"]
    )
    noted()
    for write in (admin.disable_user, admin.block_user, admin.allow_user, admin.revoke_sessions):
        await write(user_id=ada)
        noted()
    await admin.create_group(name="editors")
    noted()
    await admin.add_membership(group="editors", user_id=ada)
    noted()
    await admin.remove_membership(group="editors", user_id=ada)
    noted()
    grant = await admin.add_permission(group="editors", name="write")
    noted()
    await admin.remove_permission(permission_id=grant.id)
    noted()
    await admin.delete_group(group="editors")
    noted()
    await admin.delete_user(user_id=ada)
    noted()
    assert set(seen) == WRITES
    assert len(WRITES) == 14

    # A failed write and a read leave it alone.
    latest = admin.last_revision
    with pytest.raises(NotFound):
        await admin.delete_group(group="editors")
    await admin.list_groups()
    assert admin.last_revision == latest
    await channel.close()


async def test_keys_are_required_and_scoped(client: AsyncClient, access: AsyncClient) -> None:
    with pytest.raises(Unauthenticated) as missing:
        await client.get_user(user_id="whoever")
    assert missing.value.reason == "SERVICE_KEY_MISSING"
    with pytest.raises(PermissionDenied) as scope:
        await access.list_users()
    assert scope.value.reason == "SCOPE_INSUFFICIENT"
    stream = client.watch_events()
    with pytest.raises(Unauthenticated):
        await stream.subscribed()


async def test_admin_users(client: AsyncClient, admin: AsyncClient) -> None:
    created = await admin.create_user(
        user=resources_pb2.User(email="ada@example.com", first_name="Ada"), password=PASSWORD
    )
    assert created.id
    assert (await admin.get_user(user_id=created.id)).email == "ada@example.com"
    assert (await admin.lookup_user(email="ADA@EXAMPLE.COM")).id == created.id
    renamed = await admin.update_user(
        user=resources_pb2.User(id=created.id, last_name="Lovelace"), update_mask=["last_name"]
    )
    assert renamed.last_name == "Lovelace"
    with pytest.raises(AlreadyExists):
        await admin.create_user(user=resources_pb2.User(email="ada@example.com"))

    token = (await client.authenticate(email="ada@example.com", password=PASSWORD)).session_token
    disabled = await admin.disable_user(user_id=created.id)
    assert disabled.status == resources_pb2.USER_STATUS_DISABLED
    with pytest.raises(Unauthenticated):
        await client.introspect(session_token=token)
    with pytest.raises(FailedPrecondition) as caught:
        await client.authenticate(email="ada@example.com", password=PASSWORD)
    assert caught.value.reason == "ACCOUNT_DISABLED"
    blocked = await admin.block_user(user_id=created.id)
    assert blocked.status == resources_pb2.USER_STATUS_BLOCKED
    allowed = await admin.allow_user(user_id=created.id)
    assert allowed.status == resources_pb2.USER_STATUS_ACTIVE
    token = (await client.authenticate(email="ada@example.com", password=PASSWORD)).session_token
    await admin.revoke_sessions(user_id=created.id)
    with pytest.raises(Unauthenticated):
        await client.introspect(session_token=token)

    await admin.delete_user(user_id=created.id)
    with pytest.raises(NotFound) as gone:
        await admin.get_user(user_id=created.id)
    assert gone.value.reason == "USER_NOT_FOUND"


async def test_approve_user(start_server: StartServer) -> None:
    running = await start_server(registration_approval=True)
    async with AsyncClient(running.address, service_key=running.admin_key) as admin:
        pending = (
            await admin.register(
                email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
            )
        ).user
        assert pending.status == resources_pb2.USER_STATUS_PENDING_APPROVAL
        approved = await admin.approve_user(user_id=pending.id)
        assert approved.status == resources_pb2.USER_STATUS_ACTIVE


async def test_admin_groups_memberships_permissions(
    client: AsyncClient, admin: AsyncClient
) -> None:
    ada, _ = await _user(client, "ada@example.com")
    for name in ("editors", "readers", "writers"):
        await admin.create_group(name=name)
    with pytest.raises(AlreadyExists):
        await admin.create_group(name="editors")
    assert (await admin.get_group(group="readers")).name == "readers"
    assert [g.name async for g in admin.iter_groups(page_size=2)] == [
        "editors",
        "readers",
        "writers",
    ]
    first = await admin.list_groups(page_size=2)
    assert len(first.groups) == 2 and first.next_page_token

    membership = await admin.add_membership(group="editors", user_id=ada, extra={"since": 2020})
    assert (membership.group, membership.user_id) == ("editors", ada)
    await admin.add_membership(group="readers", user_id=ada)
    listed = await admin.list_memberships(user_id=ada)
    assert {m.group for m in listed.memberships} == {"editors", "readers"}
    assert [m.user_id async for m in admin.iter_memberships(group="editors")] == [ada]
    await admin.remove_membership(group="readers", user_id=ada)
    assert [m.group async for m in admin.iter_memberships(user_id=ada)] == ["editors"]

    grant = await admin.add_permission(group="editors", name="write", table_name="Post")
    await admin.add_permission(group="editors", name="read")
    by_group = await admin.list_permissions(group="editors")
    assert {p.name for p in by_group.permissions} == {"write", "read"}
    assert {p.name async for p in admin.iter_permissions(user_id=ada)} == {"write", "read"}
    await admin.remove_permission(permission_id=grant.id)
    assert [p.name async for p in admin.iter_permissions(group="editors")] == ["read"]

    await admin.delete_group(group="writers")
    with pytest.raises(NotFound):
        await admin.get_group(group="writers")


async def test_iter_users_follows_page_tokens(client: AsyncClient, admin: AsyncClient) -> None:
    emails = [f"user{n}@example.com" for n in range(7)]
    for email in emails:
        await admin.create_user(user=resources_pb2.User(email=email), password=PASSWORD)
    page = await admin.list_users(page_size=2)
    assert len(page.users) == 2 and page.next_page_token
    second = await admin.list_users(page_size=2, page_token=page.next_page_token)
    assert {u.id for u in second.users}.isdisjoint({u.id for u in page.users})

    seen = [user.email async for user in admin.iter_users(page_size=2)]  # four pages
    assert sorted(seen) == emails
    active = [u async for u in admin.iter_users(status=resources_pb2.USER_STATUS_ACTIVE)]
    assert len(active) == 7
    disabled = admin.iter_users(status=resources_pb2.USER_STATUS_DISABLED, page_size=2)
    assert [u async for u in disabled] == []

    with pytest.raises(InvalidArgument) as caught:
        await admin.list_users(page_token="tampered")
    assert caught.value.reason == "PAGE_TOKEN_INVALID"


async def test_events_are_listed_and_watched(client: AsyncClient, admin: AsyncClient) -> None:
    async with admin.watch_events(kind=resources_pb2.EVENT_KIND_LOGIN) as stream:
        await stream.subscribed()
        ada, _ = await _user(client, "ada@example.com")  # a registration: filtered out
        await client.authenticate(email="ada@example.com", password=PASSWORD)
        async with asyncio.timeout(5):
            event = await anext(stream)
        assert isinstance(event, resources_pb2.Event)
        assert (event.kind, event.user_id) == (resources_pb2.EVENT_KIND_LOGIN, ada)
        stream.cancel()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)

    kinds = [e.kind async for e in admin.iter_events(user_id=ada, page_size=1)]
    assert resources_pb2.EVENT_KIND_REGISTRATION in kinds
    assert resources_pb2.EVENT_KIND_LOGIN in kinds
    logins = await admin.list_events(kind=resources_pb2.EVENT_KIND_LOGIN)
    assert [e.user_id for e in logins.events] == [ada]


async def test_the_application_logs_its_own_events(client: AsyncClient, admin: AsyncClient) -> None:
    ada, _ = await _user(client, "ada@example.com")
    async with admin.watch_events(kind=resources_pb2.EVENT_KIND_APPLICATION) as stream:
        await stream.subscribed()
        event = await admin.log_event(
            description="Invoice paid", user_id=ada, data={"invoice": "INV-7", "lines": [1, 2]}
        )
        async with asyncio.timeout(5):
            assert await anext(stream) == event
        stream.cancel()
    assert event.kind == resources_pb2.EVENT_KIND_APPLICATION
    assert (event.description, event.user_id) == ("Invoice paid", ada)
    assert event.origin.startswith("admin:test-admin-")
    assert json_format.MessageToDict(event.data) == {"invoice": "INV-7", "lines": [1, 2]}
    listed = await admin.list_events(user_id=ada, kind=resources_pb2.EVENT_KIND_APPLICATION)
    assert list(listed.events) == [event]
    cron = await admin.log_event(description="Export ran", origin="cron")
    assert (cron.origin, cron.user_id, dict(cron.data)) == ("cron", "", {})

    with pytest.raises(InvalidArgument) as bad:
        await admin.log_event(description="")
    assert bad.value.violation_fields == {"description"}
    with pytest.raises(NotFound) as missing:
        await admin.log_event(description="x", user_id="00000000-0000-4000-8000-000000000000")
    assert missing.value.reason == "USER_NOT_FOUND"


async def test_a_tiny_timeout_is_deadline_exceeded(admin: AsyncClient) -> None:
    stream = admin.watch_events(timeout=0.05)
    with pytest.raises(DeadlineExceeded):
        async with asyncio.timeout(5):
            await anext(stream)


async def test_client_defaults_and_per_call_metadata(watchword: Running) -> None:
    seen: list[dict[str, Any]] = []

    class Record(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self,
            continuation: Callable[..., Any],
            details: grpc.aio.ClientCallDetails,
            request: Any,
        ) -> Any:
            seen.append({"metadata": list(details.metadata or ()), "timeout": details.timeout})
            return await continuation(details, request)

    channel = grpc.aio.insecure_channel(watchword.address, interceptors=[Record()])
    client = AsyncClient(
        "ignored",
        channel=channel,
        service_key=watchword.access_key,
        timeout=30,
        metadata=[("x-app", "bloggy")],
    )
    async with client:
        assert client.channel is channel
        await client.has_permission(
            name="read", group="nobody", metadata=[("x-request-id", "r1")], timeout=None
        )
        with pytest.raises(NotFound):
            await client.has_membership(group="nobody", user_id="someone")
    assert seen[0]["metadata"] == [
        ("authorization", f"Bearer {watchword.access_key}"),
        ("x-app", "bloggy"),
        ("x-request-id", "r1"),
    ]
    assert seen[0]["timeout"] is None
    assert 0 < seen[1]["timeout"] <= 30
    # close() left the channel it was given open.
    assert channel.get_state() != grpc.ChannelConnectivity.SHUTDOWN
    await channel.close()


async def test_a_client_made_outside_the_event_loop_works(watchword: Running) -> None:
    # grpc.aio channels belong to the loop that makes them: the client opens its own lazily,
    # so one built at import time (no running loop) is usable once the loop runs.
    client = await asyncio.to_thread(AsyncClient, watchword.address)
    async with client:
        with pytest.raises(Unauthenticated):
            await client.introspect(session_token="not-a-session")
    with pytest.raises(RuntimeError, match="^the client is closed$"):
        await client.introspect(session_token="not-a-session")


async def test_calls_after_close_raise_one_clear_error(watchword: Running) -> None:
    closed = AsyncClient(watchword.address)
    await closed.close()
    given = grpc.aio.insecure_channel(watchword.address)
    shut_by_its_owner = AsyncClient("ignored", channel=given, service_key=watchword.admin_key)
    await given.close()
    for client in (closed, shut_by_its_owner):
        with pytest.raises(RuntimeError, match="^the client is closed"):
            await client.introspect(session_token="not-a-session")
        with pytest.raises(RuntimeError, match="^the client is closed"):
            client.watch_events()

    def blocking() -> None:
        client = Client(watchword.address)
        client.close()
        sync_given = grpc.insecure_channel(watchword.address)
        owner_closed = Client("ignored", channel=sync_given, service_key=watchword.admin_key)
        sync_given.close()
        for each in (client, owner_closed):
            with pytest.raises(RuntimeError, match="^the client is closed"):
                each.introspect(session_token="not-a-session")
            with pytest.raises(RuntimeError, match="^the client is closed"):
                each.watch_events()

    await asyncio.to_thread(blocking)


class _Hanging:
    """A stand-in AuthService whose Introspect answers only when released."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def introspect(
        self, request: auth_service_pb2.IntrospectRequest, context: Any
    ) -> auth_service_pb2.IntrospectResponse:
        self.started.set()
        await self.release.wait()
        return auth_service_pb2.IntrospectResponse()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "watchword.auth.v1.AuthService",
            {
                "Introspect": grpc.unary_unary_rpc_method_handler(
                    self.introspect,
                    request_deserializer=auth_service_pb2.IntrospectRequest.FromString,
                    response_serializer=auth_service_pb2.IntrospectResponse.SerializeToString,
                )
            },
        )


async def test_closing_the_client_cancels_its_calls_with_cancelled(watchword: Running) -> None:
    hanging = _Hanging()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([hanging.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        client = AsyncClient(f"127.0.0.1:{port}")
        call = asyncio.create_task(client.introspect(session_token="whatever"))
        await hanging.started.wait()
        await client.close()
        with pytest.raises(Cancelled) as caught:
            await call
        assert caught.value.code == grpc.StatusCode.CANCELLED
        assert "closed" in caught.value.message

        # The caller's own cancellation is still asyncio's.
        hanging.started.clear()
        async with AsyncClient(f"127.0.0.1:{port}") as other:
            call = asyncio.create_task(other.introspect(session_token="whatever"))
            await hanging.started.wait()
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
    finally:
        hanging.release.set()
        await server.stop(None)

    admin = AsyncClient(watchword.address, service_key=watchword.admin_key)
    stream = admin.watch_events()
    await stream.subscribed()
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)  # let it start waiting for an event
    await admin.close()
    with pytest.raises(Cancelled):
        await waiting


def _two_event_loops(address: str, key: str) -> None:
    """A client used by two ``asyncio.run`` in a row, as a module-level one would be."""
    client = AsyncClient(address, service_key=key)
    assert asyncio.run(check_on(client)) is False
    assert asyncio.run(check_on(client)) is False  # a new loop: a new channel
    asyncio.run(client.close())

    async def make_channel() -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(address)

    given = asyncio.run(make_channel())
    passed_in = AsyncClient("ignored", channel=given, service_key=key)
    with pytest.raises(RuntimeError, match="another event loop"):
        asyncio.run(check_on(passed_in))


async def check_on(client: AsyncClient) -> bool:
    return await client.has_permission(name="read", group="nobody")


async def test_a_client_follows_its_caller_to_another_event_loop(watchword: Running) -> None:
    await asyncio.to_thread(_two_event_loops, watchword.address, watchword.access_key)

    # From this loop to another while this one runs: the old channel is closed here.
    client = AsyncClient(watchword.address, service_key=watchword.access_key)
    await check_on(client)
    first = client.channel
    await asyncio.to_thread(asyncio.run, check_on(client))
    async with asyncio.timeout(5):
        while first.get_state() != grpc.ChannelConnectivity.SHUTDOWN:
            await asyncio.sleep(0)
    await check_on(client)  # and back: a channel of this loop again
    assert client.channel is not first
    await client.close()


async def test_credentials_make_a_tls_channel(watchword: Running) -> None:
    # The test server speaks plaintext, so a TLS handshake cannot succeed.
    credentials = grpc.ssl_channel_credentials()
    async with AsyncClient(watchword.address, credentials=credentials, timeout=5) as c:
        with pytest.raises((Unavailable, DeadlineExceeded)):
            await c.introspect(session_token="whatever")


def _blocking_flow(address: str, admin_key: str) -> None:
    with Client(address, service_key=admin_key) as client:
        ada = client.register(
            email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
        ).user
        with pytest.raises(Unauthenticated) as caught:
            client.authenticate(email="ada@example.com", password="not the password")
        assert caught.value.reason == "INVALID_CREDENTIALS"
        with pytest.raises(InvalidArgument) as short:
            client.register(
                email="bob@example.com", password="short", first_name="B", last_name="C"
            )
        assert short.value.violation_fields == {"password"}

        with client.watch_events(kind=resources_pb2.EVENT_KIND_LOGIN) as stream:
            stream.subscribed()
            login = client.authenticate(email="ada@example.com", password=PASSWORD)
            assert next(stream).user_id == ada.id
        assert client.introspect(session_token=login.session_token).user.id == ada.id
        client.create_group(name="editors")
        client.add_membership(group="editors", user_id=ada.id)
        assert client.last_revision
        assert client.has_membership(group="editors", session_token=login.session_token)
        assert not client.has_permission(name="write", user_id=ada.id, min_revision="")
        member, forged = client.batch_check(
            checks=[
                MembershipCheck("editors", session_token=login.session_token),
                PermissionCheck("write", session_token="forged"),
            ]
        )
        assert (member.allowed, member.error) == (True, None)
        assert isinstance(forged.error, Unauthenticated)
        assert forged.error.reason == "SESSION_INVALID"
        with pytest.raises(ValueError, match="at most 100"):
            client.batch_check(checks=[MembershipCheck("editors", user_id=ada.id)] * 101)
        for n in range(4):
            client.create_user(user=resources_pb2.User(email=f"u{n}@example.com"))
        assert len(list(client.iter_users(page_size=2))) == 5

        with pytest.raises(DeadlineExceeded):
            next(client.watch_events(timeout=0.05))
        client.logout(session_token=login.session_token)
        with pytest.raises(Unauthenticated) as logged_out:
            client.get_profile(session_token=login.session_token)
        assert logged_out.value.reason == "SESSION_INVALID"
    with Client(address) as keyless:
        with pytest.raises(Unauthenticated) as missing:
            keyless.get_user(user_id=ada.id)
        assert missing.value.reason == "SERVICE_KEY_MISSING"
        with pytest.raises(Unauthenticated):
            keyless.watch_events().subscribed()


async def test_blocking_client(watchword: Running) -> None:
    # The server runs on this test's event loop: block in a worker thread, not here.
    await asyncio.to_thread(_blocking_flow, watchword.address, watchword.admin_key)
