"""AccessService.BatchCheck: up to 100 checks, each with its own subject, answered in order;
a check that cannot be answered carries its own status and does not fail the batch."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.support.flows import login, register
from tests.support.rpc_errors import failure
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import access_service_pb2_grpc, resources_pb2
from watchword.auth.v1 import admin_service_pb2 as admin


def membership(group: str, **subject: str) -> access.Check:
    return access.Check(membership=access.HasMembershipRequest(group=group, **subject))


def permission(name: str, table: str = "", record: str = "", **subject: str) -> access.Check:
    return access.Check(
        permission=access.HasPermissionRequest(
            name=name, table_name=table, record_id=record, **subject
        )
    )


def reason_of(status: status_pb2.Status) -> str:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError(f"no ErrorInfo in {status}")


async def setup(running: Running) -> tuple[str, str, str]:
    """Ada (in editors, which may edit posts 7) with a session, and Bob in nothing."""
    ada, _ = await register(running, "ada@example.com")
    bob, _ = await register(running, "bob@example.com")
    stub = running.admin
    await stub.CreateGroup(admin.CreateGroupRequest(group=resources_pb2.Group(name="editors")))
    await stub.AddMembership(admin.AddMembershipRequest(group="editors", user_id=ada))
    await stub.AddPermission(
        admin.AddPermissionRequest(group="editors", name="edit", table_name="posts", record_id="7")
    )
    return ada, bob, await login(running, "ada@example.com")


async def batch(running: Running, checks: list[access.Check]) -> list[access.CheckResult]:
    reply = await running.access.BatchCheck(access.BatchCheckRequest(checks=checks))
    assert len(reply.results) == len(checks)
    return list(reply.results)


async def answers_and_errors(running: Running) -> None:
    ada, bob, token = await setup(running)
    checks = [
        membership("editors", user_id=ada),
        membership("editors", user_id=bob),
        permission("edit", "posts", "7", session_token=token),
        permission("edit", "posts", "8", user_id=ada),
        permission("edit", "posts", "7", group="editors"),
        membership("editors", session_token="not-a-session"),
        access.Check(),
        permission("", user_id=ada),
        membership("editors", user_id="not-an-id"),
        membership("editors", session_token=token),
    ]
    results = await batch(running, checks)
    assert [r.allowed for r in results] == [True, False, True, False, True] + [False] * 4 + [True]
    assert [r.HasField("error") for r in results] == [False] * 5 + [True] * 4 + [False]
    unauthenticated, invalid = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT
    not_found = grpc.StatusCode.NOT_FOUND
    assert [(r.error.code, reason_of(r.error)) for r in results[5:9]] == [
        (unauthenticated.value[0], "SESSION_INVALID"),
        (invalid.value[0], "INVALID_ARGUMENT"),
        (invalid.value[0], "INVALID_ARGUMENT"),
        (not_found.value[0], "USER_NOT_FOUND"),
    ]
    # Each error is the whole status the single call would have failed with.
    assert results[5].error.message
    single = await failure(
        running.access.HasMembership(
            access.HasMembershipRequest(group="editors", session_token="not-a-session")
        )
    )
    localized = error_details_pb2.LocalizedMessage()
    assert any(
        detail.Unpack(localized)
        for detail in results[5].error.details
        if detail.Is(localized.DESCRIPTOR)
    )
    assert localized.message == single.localized
    # Asked again, the answers now come from the cache and the errors are found again:
    # the same results in the same places.
    assert await batch(running, checks) == results


async def test_answers_in_order_with_errors_in_their_own_places(watchword: Running) -> None:
    await answers_and_errors(watchword)


async def test_the_same_on_the_embedded_sqlite_default(
    start_server: StartServer, tmp_path: Path
) -> None:
    running = await start_server(database_url=f"sqlite+aiosqlite:///{tmp_path / 'ww.db'}")
    await answers_and_errors(running)


@pytest.mark.parametrize("cache", [30.0, 0.0])
async def test_a_hundred_checks_are_answered_and_a_hundred_and_one_refused(
    start_server: StartServer, cache: float
) -> None:
    running = await start_server(check_cache_max_staleness=cache)
    ada, _, token = await setup(running)
    checks = [
        permission(
            "edit", "posts", str(i), **({"user_id": ada} if i % 2 else {"session_token": token})
        )
        for i in range(100)
    ]
    for _ in range(2):  # cold, then (with a cache) warm
        results = await batch(running, checks)
        assert [r.allowed for r in results] == [i == 7 for i in range(100)]
    details = await failure(
        running.access.BatchCheck(access.BatchCheckRequest(checks=[*checks, checks[0]]))
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "checks" in details.violations


async def test_an_empty_batch_has_no_results(watchword: Running) -> None:
    assert await batch(watchword, []) == []


async def test_a_blocked_user_s_checks_are_false_and_its_sessions_invalid(
    watchword: Running,
) -> None:
    ada, _, token = await setup(watchword)
    checks = [membership("editors", user_id=ada), membership("editors", session_token=token)]
    assert [r.allowed for r in await batch(watchword, checks)] == [True, True]
    blocked = await watchword.admin.BlockUser(admin.BlockUserRequest(user_id=ada))
    results = await batch(watchword, checks)
    assert results[0].allowed is False and not results[0].HasField("error")
    assert results[0].revision == blocked.revision
    assert reason_of(results[1].error) == "SESSION_INVALID"


async def test_batch_check_needs_an_access_key(watchword: Running) -> None:
    keyless = access_service_pb2_grpc.AccessServiceStub(watchword.channel)
    details = await failure(keyless.BatchCheck(access.BatchCheckRequest()))
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
