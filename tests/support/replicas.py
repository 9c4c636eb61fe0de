"""Server processes seen through stubs, and the probes that tell when a change made
through one is seen through another (the cache-coherence, workers, drain and operations
tests share them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc

from tests.support.flows import PASSWORD
from tests.support.metadata import bearer_interceptors
from tests.support.processes import connection_owners
from tests.support.rpc_errors import details_of
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
from watchword_server.domain.access.service_keys import Scope
from watchword_server.domain.common.clock import SystemClock
from watchword_server.storage.db import Database, create_engine
from watchword_server.wiring import build_domain

# Every change must be seen within this many seconds (the bound).
BOUND = 1.0


@dataclass
class Stubs:
    """One server process seen through an admin key, an access key and no key."""

    auth: auth_service_pb2_grpc.AuthServiceAsyncStub
    access: access_service_pb2_grpc.AccessServiceAsyncStub
    admin: admin_service_pb2_grpc.AdminServiceAsyncStub
    channels: list[grpc.aio.Channel]


@dataclass
class Keys:
    access: str
    admin: str


async def create_keys(database_url: str, *names: str) -> list[str]:
    """Service keys made through the domain, as `watchword keys create` does."""
    engine = create_engine(database_url)
    try:
        domain = build_domain(settings_for(database_url), Database(engine), SystemClock())
        scopes = {"access": Scope.ACCESS, "admin": Scope.ADMIN}
        return [
            await domain.service_keys.create(name, scopes[name.split("-")[0]]) for name in names
        ]
    finally:
        await engine.dispose()


def stubs_for(address: str, keys: Keys, access_key: str | None = None) -> Stubs:
    plain = grpc.aio.insecure_channel(address)
    access_channel = grpc.aio.insecure_channel(
        address, interceptors=bearer_interceptors(access_key or keys.access)
    )
    admin_channel = grpc.aio.insecure_channel(address, interceptors=bearer_interceptors(keys.admin))
    return Stubs(
        auth=auth_service_pb2_grpc.AuthServiceStub(plain),
        access=access_service_pb2_grpc.AccessServiceStub(access_channel),
        admin=admin_service_pb2_grpc.AdminServiceStub(admin_channel),
        channels=[plain, access_channel, admin_channel],
    )


@dataclass
class Member:
    """A user in group ``group`` (which holds edit on posts), with a session."""

    user_id: str
    token: str
    group: str
    permission_id: str


async def new_member(stubs: Stubs, tag: str) -> Member:
    email = f"{tag}@example.com"
    created = await stubs.admin.CreateUser(
        admin.CreateUserRequest(
            user=resources_pb2.User(email=email, first_name="A", last_name="B"), password=PASSWORD
        )
    )
    group = f"group-{tag}"
    await stubs.admin.CreateGroup(admin.CreateGroupRequest(group=resources_pb2.Group(name=group)))
    await stubs.admin.AddMembership(
        admin.AddMembershipRequest(group=group, user_id=created.user.id)
    )
    granted = await stubs.admin.AddPermission(
        admin.AddPermissionRequest(group=group, name="edit", table_name="posts")
    )
    login = await stubs.auth.Authenticate(auth.AuthenticateRequest(email=email, password=PASSWORD))
    return Member(created.user.id, login.session_token, group, granted.permission.id)


Probe = Callable[[], Awaitable[object]]


async def outcome(call: Awaitable[object]) -> object:
    """The call's answer, or the reason it failed with."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        return details_of(error).reason


async def seen_within(probe: Probe, expected: object, bound: float = BOUND) -> float:
    """Seconds until ``probe`` gives ``expected``; fails past ``bound``."""
    started = time.monotonic()
    while True:
        got = await probe()
        elapsed = time.monotonic() - started
        if got == expected:
            return elapsed
        if elapsed > bound:
            raise AssertionError(f"still {got!r} after {elapsed:.2f} s, expected {expected!r}")
        await asyncio.sleep(0.01)


def member_probe(stubs: Stubs, member: Member) -> Probe:
    async def probe() -> object:
        request = access.HasMembershipRequest(user_id=member.user_id, group=member.group)
        return await outcome(_member(stubs.access.HasMembership(request)))

    return probe


async def _member(call: Awaitable[access.HasMembershipResponse]) -> bool:
    return (await call).member


async def _allowed(call: Awaitable[access.HasPermissionResponse]) -> bool:
    return (await call).allowed


def permission_probe(stubs: Stubs, member: Member) -> Probe:
    async def probe() -> object:
        request = access.HasPermissionRequest(
            user_id=member.user_id, name="edit", table_name="posts", record_id="7"
        )
        return await outcome(_allowed(stubs.access.HasPermission(request)))

    return probe


def session_probe(stubs: Stubs, member: Member) -> Probe:
    async def probe() -> object:
        request = access.HasMembershipRequest(session_token=member.token, group=member.group)
        return await outcome(_member(stubs.access.HasMembership(request)))

    return probe


async def warm(probe: Probe, expected: object) -> None:
    # Twice: the first answer fills the cache, the second comes from it.
    assert await probe() == expected
    assert await probe() == expected


def one_connection_stubs(address: str, admin_key: str) -> Stubs:
    """Every service over one channel (one connection, so one worker); an admin key
    covers AccessService too."""
    channel = grpc.aio.insecure_channel(
        address,
        interceptors=bearer_interceptors(admin_key),
        # A connection of its own: channels to one target share connections by default.
        options=[("grpc.use_local_subchannel_pool", 1)],
    )
    return Stubs(
        auth=auth_service_pb2_grpc.AuthServiceStub(channel),
        access=access_service_pb2_grpc.AccessServiceStub(channel),
        admin=admin_service_pb2_grpc.AdminServiceStub(channel),
        channels=[channel],
    )


async def pinned_stubs(
    address: str, admin_key: str, port: int, tries: int = 40
) -> dict[int, Stubs]:
    """Stubs whose connections land on different workers: worker pid -> stubs."""
    by_worker: dict[int, Stubs] = {}
    for _ in range(tries):
        before = set(connection_owners(port))
        stubs = one_connection_stubs(address, admin_key)
        await asyncio.wait_for(stubs.channels[0].channel_ready(), 10)
        owners = connection_owners(port)
        new = {owners[client] for client in set(owners) - before}
        if len(new) == 1 and (pid := new.pop()) not in by_worker:
            by_worker[pid] = stubs
        else:
            for channel in stubs.channels:
                await channel.close(None)
        if len(by_worker) == 2:
            break
    return by_worker
