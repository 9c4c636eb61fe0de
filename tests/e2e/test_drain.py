"""SIGTERM drains: health says NOT_SERVING at once, calls are still served for
``shutdown_drain_seconds``, then the server stops accepting, finishes within
``grace_period`` and exits; with ``--workers`` every worker drains alike."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.flows import PASSWORD
from tests.support.processes import ServerProcess, serve_process, server_env
from tests.support.replicas import create_keys, pinned_stubs
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import auth_service_pb2_grpc

DRAIN = 2.0
GRACE = 1.0


async def _not_serving_within(channel: grpc.aio.Channel, seconds: float) -> None:
    stub: Any = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + seconds
    while True:
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
        if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            return
        assert time.monotonic() < deadline, "health still says SERVING"
        await asyncio.sleep(0.02)


async def _served(stub: auth_service_pb2_grpc.AuthServiceAsyncStub, email: str) -> None:
    reply = await stub.Register(
        auth.RegisterRequest(email=email, password=PASSWORD, first_name="A", last_name="B"),
        timeout=5,
    )
    assert reply.session_token


async def _exit_status(server: ServerProcess, timeout: float) -> int:
    return await asyncio.to_thread(server.process.wait, timeout)


def _sqlite_env(tmp_path: Path, **settings: Any) -> dict[str, str]:
    # One process, and nothing of the database matters: the embedded default will do.
    return server_env(f"sqlite+aiosqlite:///{tmp_path / 'watchword.db'}", **settings)


async def test_sigterm_drains_then_stops(tmp_path: Path) -> None:
    env = _sqlite_env(tmp_path, shutdown_drain_seconds=DRAIN, grace_period=GRACE)
    async with serve_process(env, tmp_path / "server.log") as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = auth_service_pb2_grpc.AuthServiceStub(channel)
            await _served(stub, "before@example.com")
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await _not_serving_within(channel, 1.0)
            await asyncio.sleep(0.1)  # where the server used to refuse every call
            await _served(stub, "during@example.com")
            # A new connection is still accepted during the drain.
            async with grpc.aio.insecure_channel(server.address) as fresh:
                await _served(auth_service_pb2_grpc.AuthServiceStub(fresh), "fresh@example.com")
            assert time.monotonic() - signalled < DRAIN
            assert await _exit_status(server, DRAIN + GRACE + 10) == 0
            took = time.monotonic() - signalled
        assert DRAIN <= took < DRAIN + GRACE + 3, took
    assert "draining: health says NOT_SERVING" in (tmp_path / "server.log").read_text()


async def test_a_call_still_running_when_the_drain_ends_is_finished(tmp_path: Path) -> None:
    # bcrypt(14) takes about a second here: the login outlasts a 0.3 s drain.
    drain = 0.3
    env = _sqlite_env(
        tmp_path, shutdown_drain_seconds=drain, grace_period=10, hmac_alg="bcrypt(14)"
    )
    async with serve_process(env, tmp_path / "server.log") as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = auth_service_pb2_grpc.AuthServiceStub(channel)
            await _served(stub, "slow@example.com")
            login = asyncio.ensure_future(
                stub.Authenticate(
                    auth.AuthenticateRequest(email="slow@example.com", password=PASSWORD),
                    timeout=30,
                )
            )
            await asyncio.sleep(0.1)  # the hash has started
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            reply = await login
            answered = time.monotonic() - signalled
            assert reply.session_token
            assert answered > drain, "the login should have outlasted the drain"
            assert await _exit_status(server, 30) == 0


async def test_a_second_signal_ends_the_drain(tmp_path: Path) -> None:
    env = _sqlite_env(tmp_path, shutdown_drain_seconds=60, grace_period=GRACE)
    async with serve_process(env, tmp_path / "server.log") as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            server.process.send_signal(signal.SIGTERM)
            await _not_serving_within(channel, 1.0)
            server.process.send_signal(signal.SIGINT)
            signalled = time.monotonic()
            assert await _exit_status(server, 30) == 0
        assert time.monotonic() - signalled < GRACE + 3


async def test_without_a_drain_the_server_stops_at_once(tmp_path: Path) -> None:
    env = _sqlite_env(tmp_path, shutdown_drain_seconds=0, grace_period=GRACE)
    async with serve_process(env, tmp_path / "server.log") as server:
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert await _exit_status(server, 30) == 0
        assert time.monotonic() - signalled < GRACE + 3


@pytest.mark.postgres_only  # --workers is PostgreSQL's
async def test_every_worker_drains(database_url: str, tmp_path: Path) -> None:
    (admin_key,) = await create_keys(database_url, "admin-drain")
    env = server_env(database_url, shutdown_drain_seconds=DRAIN, grace_period=GRACE)
    log = tmp_path / "workers.log"
    async with serve_process(env, log, workers=2) as server:
        deadline = time.monotonic() + 30
        while log.read_text().count("watchword is serving on") < 2:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        by_worker = await pinned_stubs(server.address, admin_key, server.port)
        assert len(by_worker) == 2, "both workers should accept connections"
        try:
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            for pid, stubs in by_worker.items():
                await _not_serving_within(stubs.channels[0], 1.0)
                await _served(stubs.auth, f"during-{pid}@example.com")
            assert time.monotonic() - signalled < DRAIN
        finally:
            for stubs in by_worker.values():
                for channel in stubs.channels:
                    await channel.close(None)
        assert await _exit_status(server, DRAIN + GRACE + 15) == 0
        assert DRAIN <= time.monotonic() - signalled < DRAIN + GRACE + 5
        for pid in by_worker:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} is still running"
    assert log.read_text().count("draining: health says NOT_SERVING") == 2
