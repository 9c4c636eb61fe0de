"""``watchword serve --workers N``: N processes serve one port, each with its own cache
kept coherent by change notices; SIGTERM drains them all; and no unrelated server can join
(or take) a port that is in use."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from tests.support.processes import serve_process, server_env
from tests.support.replicas import (
    create_keys,
    member_probe,
    new_member,
    pinned_stubs,
    seen_within,
    warm,
)
from watchword.auth.v1 import admin_service_pb2 as admin


@pytest.mark.postgres_only
async def test_two_workers_serve_share_changes_and_drain_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    (admin_key,) = await create_keys(database_url, "admin-w")
    env = server_env(database_url, check_cache_max_staleness=30)
    log = tmp_path / "workers.log"
    async with serve_process(env, log, workers=2) as server:
        # Health answered as soon as one worker served; wait for the other too.
        deadline = time.monotonic() + 30
        while log.read_text().count("watchword is serving on") < 2:
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        by_worker = await pinned_stubs(server.address, admin_key, server.port)
        assert len(by_worker) == 2, "both workers should accept connections"
        assert server.process.pid not in by_worker  # the supervisor itself serves nothing
        one, other = by_worker.values()
        try:
            for round_ in range(3):
                member = await new_member(one, f"worker{round_}")
                await warm(member_probe(other, member), True)
                await one.admin.BlockUser(admin.BlockUserRequest(user_id=member.user_id))
                await seen_within(member_probe(other, member), False)
        finally:
            for stubs in by_worker.values():
                for channel in stubs.channels:
                    await channel.close(None)

        started = time.monotonic()
        assert await asyncio.to_thread(server.stop) == 0
        assert time.monotonic() - started < 15
        for pid in by_worker:
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} is still running"


def serve_again(env: dict[str, str], address: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watchword_server", "serve", "--listen", address, *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.postgres_only
async def test_a_second_server_on_a_port_in_use_refuses_to_start(
    database_url: str, tmp_path: Path
) -> None:
    env = server_env(database_url)
    async with serve_process(env, tmp_path / "first.log") as first:
        single = await asyncio.to_thread(serve_again, env, first.address)
        assert single.returncode == 1
        assert f"{first.address} is already in use" in single.stderr
        group = await asyncio.to_thread(serve_again, env, first.address, "--workers", "2")
        assert group.returncode == 1
        assert f"{first.address} is already in use" in group.stderr
        # The first server still has the port to itself.
        async with grpc.aio.insecure_channel(first.address) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)

    async with serve_process(env, tmp_path / "group.log", workers=2) as workers:
        intruder = await asyncio.to_thread(serve_again, env, workers.address)
        assert intruder.returncode == 1
        assert f"{workers.address} is already in use" in intruder.stderr


def test_workers_need_postgresql(tmp_path: Path) -> None:
    env = server_env(f"sqlite+aiosqlite:///{tmp_path / 'ww.db'}")
    refused = serve_again(env, "127.0.0.1:0", "--workers", "2")
    assert refused.returncode == 1
    assert "--workers needs PostgreSQL" in refused.stderr
