"""PostgreSQL stopped and restarted under a serving Watchword: while it is down every call
that needs it answers UNAVAILABLE with a retry delay and health says NOT_SERVING; once it
is back the server serves again within seconds, and nothing was half-written meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tests.support.flows import PASSWORD, register
from tests.support.postgres import ThrowawayCluster, connect, postgres_database
from tests.support.servers import Running, StartServer, migrate
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2 as resources

_DOWN_FOR = 3.0
_BACK_WITHIN = 5.0


@dataclass(frozen=True)
class Outcome:
    rpc: str
    sent: float
    answered: float
    code: grpc.StatusCode
    reason: str = ""
    retry_delay: float | None = None


@pytest.fixture
def database_of_its_own() -> Iterator[tuple[ThrowawayCluster, str]]:
    with ThrowawayCluster() as cluster, postgres_database(server_url=cluster.url) as url:
        yield cluster, url


def _outcome_of(rpc: str, sent: float, error: grpc.aio.AioRpcError) -> Outcome:
    reason, delay = "", None
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.ToTimedelta().total_seconds()
    return Outcome(rpc, sent, time.monotonic(), error.code(), reason, delay)


async def _health(running: Running) -> int:
    stub: Any = health_pb2_grpc.HealthStub(running.channel)  # the generated stub is untyped
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    return int(reply.status)


async def _wait_for_health(running: Running, wanted: int, within: float) -> float:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await _health(running) == wanted:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"health did not become {wanted} within {within}s")


async def test_calls_answer_unavailable_while_postgresql_is_down_and_serve_once_it_is_back(
    start_server: StartServer, database_of_its_own: tuple[ThrowawayCluster, str]
) -> None:
    cluster, url = database_of_its_own
    await migrate(url)
    running = await start_server(database_url=url)
    user_id, token = await register(running, "ada@example.com")
    await running.admin.CreateGroup(admin.CreateGroupRequest(group=resources.Group(name="editors")))

    registered: list[str] = []
    calls: dict[str, Callable[[int], Awaitable[object]]] = {
        "Register": lambda i: _register(running, f"user{i}@example.com", registered),
        "Authenticate": lambda _: running.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD), timeout=10
        ),
        "Introspect": lambda _: running.auth.Introspect(
            auth.IntrospectRequest(session_token=token), timeout=10
        ),
        "HasMembership": lambda _: running.access.HasMembership(
            access.HasMembershipRequest(user_id=user_id, group="editors"), timeout=10
        ),
        "ListUsers": lambda _: running.admin.ListUsers(admin.ListUsersRequest(), timeout=10),
    }
    outcomes: list[Outcome] = []
    stopping = asyncio.Event()

    async def load(rpc: str, call: Callable[[int], Awaitable[object]]) -> None:
        i = 0
        while not stopping.is_set():
            i += 1
            sent = time.monotonic()
            try:
                await call(i)
            except grpc.aio.AioRpcError as error:
                outcomes.append(_outcome_of(rpc, sent, error))
                await asyncio.sleep(0.02)  # a caller backs off a little
            else:
                outcomes.append(Outcome(rpc, sent, time.monotonic(), grpc.StatusCode.OK))

    workers = [asyncio.create_task(load(rpc, call)) for rpc, call in calls.items()]
    try:
        await asyncio.sleep(1.0)
        down = time.monotonic()
        await asyncio.to_thread(cluster.stop, "fast")
        not_serving = await _wait_for_health(
            running, health_pb2.HealthCheckResponse.NOT_SERVING, within=5
        )
        await asyncio.sleep(max(0.0, _DOWN_FOR - (time.monotonic() - down)))
        await asyncio.to_thread(cluster.start)
        up = time.monotonic()
        serving = await _wait_for_health(
            running, health_pb2.HealthCheckResponse.SERVING, within=_BACK_WITHIN
        )
        await asyncio.sleep(1.0)
    finally:
        stopping.set()
        await asyncio.gather(*workers, return_exceptions=True)

    # Every answer was a success or UNAVAILABLE DATABASE_UNAVAILABLE with a retry delay:
    # no INTERNAL, no UNKNOWN, no other status for a database that went away.
    failures = [o for o in outcomes if o.code != grpc.StatusCode.OK]
    odd = [
        o
        for o in failures
        if (o.code, o.reason) != (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
    ]
    assert not odd, odd[:5]
    assert all(o.retry_delay is not None and o.retry_delay >= 1 for o in failures)
    # It was down for real: calls failed, and only while it was (give or take a probe).
    assert failures, "no call failed while PostgreSQL was down"
    assert all(down - 0.5 <= o.answered and o.sent <= up + _BACK_WITHIN for o in failures)
    assert not_serving - down < 3.0
    # Once back, each RPC succeeds again within 5 s.
    for rpc in calls:
        first = min(
            o.answered
            for o in outcomes
            if o.rpc == rpc and o.code == grpc.StatusCode.OK and o.sent >= up
        )
        assert first - up <= _BACK_WITHIN, rpc
    assert serving - up <= _BACK_WITHIN

    # Nothing half-made: every account answered as registered exists, and every account
    # that exists came with its registration event (one transaction, or none of it).
    with connect(url) as conn:
        users = {row[0] for row in conn.execute("SELECT email FROM users")}
        logged = {
            row[0]
            for row in conn.execute(
                "SELECT u.email FROM events e JOIN users u ON u.id = e.user_id "
                "WHERE e.kind = 'registration'"
            )
        }
    assert set(registered) <= users
    assert users == logged


async def _register(running: Running, email: str, registered: list[str]) -> None:
    await running.auth.Register(
        auth.RegisterRequest(email=email, password=PASSWORD, first_name="A", last_name="B"),
        timeout=10,
    )
    registered.append(email)
