"""ListEvents and WatchEvents, including events written by another server process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support.flows import PASSWORD, login, register
from tests.support.net import free_port
from tests.support.rpc_errors import details_of
from tests.support.servers import TEST_PEPPER, Running
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import admin_service_pb2_grpc, auth_service_pb2_grpc, resources_pb2
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword_server.domain.access.service_keys import Scope


async def test_list_events_filters_and_pages(watchword: Running) -> None:
    ada, _ = await register(watchword, "ada@example.com")
    bob, _ = await register(watchword, "bob@example.com")
    for _ in range(3):
        await login(watchword, "ada@example.com")
    await login(watchword, "bob@example.com")
    logins = await watchword.admin.ListEvents(
        admin.ListEventsRequest(user_id=ada, kind=resources_pb2.EVENT_KIND_LOGIN)
    )
    assert len(logins.events) == 3
    assert {event.user_id for event in logins.events} == {ada}
    assert all(event.description == f"User {ada} logged in" for event in logins.events)
    everything: list[str] = []
    token = ""
    while True:
        page = await watchword.admin.ListEvents(
            admin.ListEventsRequest(page_size=2, page_token=token)
        )
        everything += [event.id for event in page.events]
        token = page.next_page_token
        if not token:
            break
    assert len(everything) == len(set(everything)) == 6  # 2 registrations + 4 logins
    by_bob = await watchword.admin.ListEvents(admin.ListEventsRequest(user_id=bob))
    assert [e.kind for e in by_bob.events] == [
        resources_pb2.EVENT_KIND_REGISTRATION,
        resources_pb2.EVENT_KIND_LOGIN,
    ]


async def test_watch_events_in_this_process(watchword: Running) -> None:
    stream = watchword.admin.WatchEvents(
        admin.WatchEventsRequest(kind=resources_pb2.EVENT_KIND_LOGIN)
    )
    await stream.initial_metadata()  # the server says: subscribed
    await register(watchword, "ada@example.com")  # a registration: filtered out
    await login(watchword, "ada@example.com")
    async with asyncio.timeout(5):
        reply = await stream.read()
    assert isinstance(reply, admin.WatchEventsResponse)
    assert reply.event.kind == resources_pb2.EVENT_KIND_LOGIN
    stream.cancel()


@pytest.fixture
async def other_process(database_url: str) -> AsyncIterator[str]:
    """A second `watchword serve` process on the same database; yields its address."""
    port = free_port()
    env = {
        **os.environ,
        "WATCHWORD_DATABASE_URL": database_url,
        "WATCHWORD_HMAC_KEY": TEST_PEPPER,
        "WATCHWORD_HMAC_ALG": "bcrypt(4)",
        "WATCHWORD_LISTEN": f"127.0.0.1:{port}",
        "WATCHWORD_REGISTRATION_VERIFICATION": "false",
        "WATCHWORD_SHUTDOWN_DRAIN_SECONDS": "0",  # stopped at once: draining is test_drain's
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "watchword_server", "serve"], env=env, stderr=subprocess.DEVNULL
    )
    address = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_watch_sees_a_login_made_through_another_process(
    watchword: Running, other_process: str
) -> None:
    stream = watchword.admin.WatchEvents(
        admin.WatchEventsRequest(kind=resources_pb2.EVENT_KIND_LOGIN)
    )
    async with grpc.aio.insecure_channel(other_process) as channel:
        other = auth_service_pb2_grpc.AuthServiceStub(channel)
        await other.Register(
            auth.RegisterRequest(
                email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
            )
        )
        await stream.initial_metadata()  # the server says: subscribed
        login_done = time.monotonic()
        reply = await other.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
        async with asyncio.timeout(5):
            event = await stream.read()
        seen_after = time.monotonic() - login_done
    assert isinstance(event, admin.WatchEventsResponse)
    assert event.event.user_id == reply.user.id
    assert event.event.kind == resources_pb2.EVENT_KIND_LOGIN
    assert seen_after < 1.0
    stream.cancel()


async def test_a_watch_ends_within_a_second_of_its_key_s_revocation(watchword: Running) -> None:
    keys = watchword.server.service_keys
    assert keys is not None
    secret = await keys.create("watcher", Scope.ADMIN)
    stub = admin_service_pb2_grpc.AdminServiceStub(watchword.channel)
    stream = stub.WatchEvents(
        admin.WatchEventsRequest(), metadata=(("authorization", f"Bearer {secret}"),)
    )
    await stream.initial_metadata()  # subscribed
    await register(watchword, "ada@example.com")
    async with asyncio.timeout(5):
        first = await stream.read()
    assert isinstance(first, admin.WatchEventsResponse)
    await keys.revoke("watcher")
    revoked = time.monotonic()
    await asyncio.sleep(0.3)  # the revocation's notice reaches this process
    await login(watchword, "ada@example.com")  # an event the stream must not deliver
    async with asyncio.timeout(5):
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while (reply := await stream.read()) is not grpc.aio.EOF:
                assert isinstance(reply, admin.WatchEventsResponse)
                assert reply.event.kind != resources_pb2.EVENT_KIND_LOGIN, "after the revocation"
    assert time.monotonic() - revoked < 1.5
    details = details_of(ended.value)
    assert (details.code, details.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SERVICE_KEY_INVALID",
    )
