"""The check cache across server processes: a change made through one process is seen by
checks on another within a second, every time; losing the LISTEN connection never serves a
stale answer; and a caller that passes a change's revision reads its own write anywhere."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from google.protobuf import field_mask_pb2

from tests.support.postgres import connect, postgres_database
from tests.support.processes import ServerProcess, serve_process, server_env
from tests.support.replicas import (
    BOUND,
    Keys,
    Stubs,
    create_keys,
    member_probe,
    new_member,
    permission_probe,
    seen_within,
    session_probe,
    stubs_for,
    warm,
)
from tests.support.rpc_errors import details_of
from tests.support.servers import migrate
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import (
    resources_pb2,
)

# One pair of server processes (and one database) for the whole module: starting them is
# what takes time. Each test makes users and groups of its own.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ROUNDS = 3


@dataclass
class Pair:
    """Two server processes on one database."""

    one: Stubs
    other: Stubs
    servers: tuple[ServerProcess, ServerProcess]
    keys: Keys
    database_url: str
    env: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pair(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pair]:
    logs = tmp_path_factory.mktemp("coherence")
    with postgres_database(server_url=postgres_server_url) as database_url:
        await migrate(database_url)
        access_key, admin_key = await create_keys(database_url, "access-1", "admin-1")
        keys = Keys(access=access_key, admin=admin_key)
        env = server_env(database_url, check_cache_max_staleness=30)
        async with contextlib.AsyncExitStack() as stack:
            first, second = await asyncio.gather(
                stack.enter_async_context(serve_process(env, logs / "one.log")),
                stack.enter_async_context(serve_process(env, logs / "other.log")),
            )
            one, other = stubs_for(first.address, keys), stubs_for(second.address, keys)
            try:
                yield Pair(one, other, (first, second), keys, database_url, env)
            finally:
                for channel in (*one.channels, *other.channels):
                    await channel.close(None)


async def test_a_change_through_one_process_is_seen_by_the_other_within_a_second(
    pair: Pair,
) -> None:
    one, other = pair.one, pair.other
    delays: dict[str, list[float]] = {}
    for round_ in range(ROUNDS):
        # BlockUser: memberships, permissions and sessions all end.
        member = await new_member(one, f"block{round_}")
        for probe in (member_probe(other, member), session_probe(other, member)):
            await warm(probe, True)
        await one.admin.BlockUser(admin.BlockUserRequest(user_id=member.user_id))
        delays.setdefault("BlockUser", []).append(
            await seen_within(member_probe(other, member), False)
        )
        assert await session_probe(other, member)() == "SESSION_INVALID"

        # RemoveMembership.
        member = await new_member(one, f"leave{round_}")
        await warm(member_probe(other, member), True)
        await one.admin.RemoveMembership(
            admin.RemoveMembershipRequest(group=member.group, user_id=member.user_id)
        )
        delays.setdefault("RemoveMembership", []).append(
            await seen_within(member_probe(other, member), False)
        )

        # RemovePermission.
        member = await new_member(one, f"revoke{round_}")
        await warm(permission_probe(other, member), True)
        await one.admin.RemovePermission(
            admin.RemovePermissionRequest(permission_id=member.permission_id)
        )
        delays.setdefault("RemovePermission", []).append(
            await seen_within(permission_probe(other, member), False)
        )

        # Logout.
        member = await new_member(one, f"logout{round_}")
        await warm(session_probe(other, member), True)
        introspect = other.auth.Introspect
        assert (await introspect(auth.IntrospectRequest(session_token=member.token))).user.id
        await one.auth.Logout(auth.LogoutRequest(session_token=member.token))
        delays.setdefault("Logout", []).append(
            await seen_within(session_probe(other, member), "SESSION_INVALID")
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await introspect(auth.IntrospectRequest(session_token=member.token))
        assert details_of(refused.value).reason == "SESSION_INVALID"
    assert all(max(seen) < BOUND for seen in delays.values()), delays


async def test_a_revoked_service_key_is_refused_by_every_process_within_a_second(
    pair: Pair,
) -> None:
    for round_ in range(2):  # each round runs the CLI, a process of its own
        name = f"access-doomed{round_}"
        (doomed,) = await create_keys(pair.database_url, name)
        member = await new_member(pair.one, f"key{round_}")
        others = stubs_for(pair.servers[1].address, pair.keys, access_key=doomed)
        try:
            await warm(member_probe(others, member), True)
            # `watchword keys revoke` is a process of its own: its notice reaches both.
            revoked = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "watchword_server", "keys", "revoke", name],
                env=pair.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert revoked.returncode == 0, revoked.stderr
            await seen_within(member_probe(others, member), "SERVICE_KEY_INVALID")
        finally:
            for channel in others.channels:
                await channel.close(None)


async def test_answers_really_come_from_the_cache(pair: Pair) -> None:
    # A change behind the service's back (no notice) is not seen while the answer is
    # cached, so the test above shows invalidation, not the absence of a cache.
    member = await new_member(pair.one, "sneaky")
    await warm(member_probe(pair.other, member), True)
    with connect(pair.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM memberships WHERE user_id = %s", [member.user_id])
    assert await member_probe(pair.other, member)() is True
    # Any announced change of this user drops every answer about it.
    await pair.one.admin.UpdateUser(
        admin.UpdateUserRequest(
            user=resources_pb2.User(id=member.user_id, first_name="Changed"),
            update_mask=field_mask_pb2.FieldMask(paths=["first_name"]),
        )
    )
    await seen_within(member_probe(pair.other, member), False)


def listeners(database_url: str) -> list[int]:
    with connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'watchword-changes'"
        ).fetchall()
    return [row[0] for row in rows]


async def test_a_lost_listen_connection_never_serves_a_stale_answer(pair: Pair) -> None:
    member = await new_member(pair.one, "lost")
    await warm(member_probe(pair.other, member), True)
    assert len(listeners(pair.database_url)) == 2
    with connect(pair.database_url, autocommit=True) as conn:
        # Wait (up to 5 s) until the backends are gone, so the notices below go nowhere.
        for pid in listeners(pair.database_url):
            conn.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    await pair.one.admin.RemoveMembership(
        admin.RemoveMembershipRequest(group=member.group, user_id=member.user_id)
    )
    # Heard by nobody, yet no process answers from before it.
    assert await member_probe(pair.other, member)() is False

    # Listening again (with backoff), the cache works and changes reach it again.
    deadline = time.monotonic() + 15
    while len(listeners(pair.database_url)) < 2:
        assert time.monotonic() < deadline, "the listeners did not come back"
        await asyncio.sleep(0.1)
    again = await new_member(pair.one, "again")
    await warm(member_probe(pair.other, again), True)
    await pair.one.admin.BlockUser(admin.BlockUserRequest(user_id=again.user_id))
    await seen_within(member_probe(pair.other, again), False)


async def test_a_change_s_revision_reads_the_change_on_any_process(pair: Pair) -> None:
    member = await new_member(pair.one, "revision")
    await warm(permission_probe(pair.other, member), True)
    removed = await pair.one.admin.RemovePermission(
        admin.RemovePermissionRequest(permission_id=member.permission_id)
    )
    assert removed.revision
    # No waiting for the notice: the revision alone makes the answer current.
    reply = await pair.other.access.HasPermission(
        access.HasPermissionRequest(
            user_id=member.user_id,
            name="edit",
            table_name="posts",
            record_id="7",
            min_revision=removed.revision,
        )
    )
    assert reply.allowed is False
    assert reply.revision
