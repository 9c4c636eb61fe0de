"""The embedded SQLite default runs the whole contract, not only login."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.support.clock import ManualClock
from tests.support.metadata import bearer_interceptors
from tests.support.servers import settings_for
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import (
    access_service_pb2_grpc,
    admin_service_pb2_grpc,
    auth_service_pb2_grpc,
    resources_pb2,
)
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword_server.app import WatchwordServer
from watchword_server.config import Settings
from watchword_server.domain.access.service_keys import Scope


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[WatchwordServer, str, str]]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'watchword.db'}",
        listen="127.0.0.1:0",
        hmac_alg="bcrypt(4)",
        registration_verification=False,
        grace_period=0,
    )
    server = WatchwordServer(settings, clock=ManualClock())
    port = await server.start()
    assert server.service_keys is not None
    key = await server.service_keys.create("admin", Scope.ADMIN)
    yield server, f"127.0.0.1:{port}", key
    await server.stop(0)


async def test_admin_access_and_events_on_sqlite(
    embedded: tuple[WatchwordServer, str, str],
) -> None:
    _, address, key = embedded
    async with grpc.aio.insecure_channel(address, interceptors=bearer_interceptors(key)) as channel:
        users = auth_service_pb2_grpc.AuthServiceStub(channel)
        admins = admin_service_pb2_grpc.AdminServiceStub(channel)
        checks = access_service_pb2_grpc.AccessServiceStub(channel)
        stream = admins.WatchEvents(admin.WatchEventsRequest(kind=resources_pb2.EVENT_KIND_LOGIN))
        await stream.initial_metadata()

        ids = []
        for i in range(5):
            reply = await users.Register(
                auth.RegisterRequest(
                    email=f"u{i}@example.com",
                    password="correct horse",
                    first_name="A",
                    last_name="B",
                )
            )
            ids.append(reply.user.id)
        await admins.CreateGroup(admin.CreateGroupRequest(group=resources_pb2.Group(name="ops")))
        await admins.AddMembership(admin.AddMembershipRequest(group="ops", user_id=ids[0]))
        await admins.AddPermission(
            admin.AddPermissionRequest(group="ops", name="deploy", table_name="App")
        )
        allowed = await checks.HasPermission(
            access.HasPermissionRequest(
                user_id=ids[0], name="deploy", table_name="App", record_id="7"
            )
        )
        assert allowed.allowed
        denied = await checks.HasPermission(
            access.HasPermissionRequest(user_id=ids[1], name="deploy", table_name="App")
        )
        assert not denied.allowed

        seen: list[str] = []
        token = ""
        while True:
            page = await admins.ListUsers(admin.ListUsersRequest(page_size=2, page_token=token))
            seen += [user.id for user in page.users]
            token = page.next_page_token
            if not token:
                break
        assert sorted(seen) == sorted(ids)

        await users.Authenticate(
            auth.AuthenticateRequest(email="u3@example.com", password="correct horse")
        )
        async with asyncio.timeout(5):
            event = await stream.read()
        assert isinstance(event, admin.WatchEventsResponse)
        assert event.event.user_id == ids[3]
        stream.cancel()

        await admins.BlockUser(admin.BlockUserRequest(user_id=ids[0]))
        blocked = await checks.HasMembership(
            access.HasMembershipRequest(user_id=ids[0], group="ops")
        )
        assert not blocked.member


def _start_and_stop(database_url: str) -> None:
    async def main() -> None:
        server = WatchwordServer(
            settings_for(database_url, retention_interval=3600), clock=ManualClock()
        )
        await server.start()
        await server.stop(0)

    asyncio.run(main())


async def test_a_server_stopped_at_once_leaves_no_database_work_behind(tmp_path: Path) -> None:
    # Its background jobs (the retention round and the health probe start at once) are
    # stopped between database calls: a call cancelled half-way would leave aiosqlite's
    # thread to answer an event loop that is closed by then.
    errors: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    try:
        for attempt in range(10):
            url = f"sqlite+aiosqlite:///{tmp_path / f'watchword-{attempt}.db'}"
            await asyncio.to_thread(_start_and_stop, url)
        await asyncio.sleep(0.5)  # long enough for a leftover driver call to finish
    finally:
        threading.excepthook = previous
    assert errors == []
