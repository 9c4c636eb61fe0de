"""Watchword servers in processes of their own (``watchword serve``), for tests about what
crosses processes: change notices, workers, signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.net import free_port
from tests.support.servers import TEST_PEPPER
from tests.support.tls import channel

__all__ = ["ServerProcess", "connection_owners", "server_env", "serve_process"]

_READY = 60.0


def server_env(database_url: str, **settings: Any) -> dict[str, str]:
    """The environment of a test server process: ours minus any WATCHWORD_*, plus these."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    values: dict[str, Any] = {
        "database_url": database_url,
        "hmac_key": TEST_PEPPER,
        "hmac_alg": "bcrypt(4)",
        "registration_verification": False,
        "grace_period": 1,
        "shutdown_drain_seconds": 0,  # stopped at once, unless a test is about draining
        **settings,
    }
    env.update({f"WATCHWORD_{name.upper()}": str(value) for name, value in values.items()})
    return env


@dataclass
class ServerProcess:
    """A started ``watchword serve`` (maybe a supervisor of workers) and its address."""

    process: subprocess.Popen[bytes]
    address: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


async def _wait_serving(server: ServerProcess, credentials: grpc.ChannelCredentials | None) -> None:
    deadline = time.monotonic() + _READY
    async with channel(server.address, credentials) as opened:
        stub: Any = health_pb2_grpc.HealthStub(opened)
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{server.log.read_text()[-3000:]}")
            with contextlib.suppress(grpc.RpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the server did not come up:\n{server.log.read_text()[-3000:]}")


@contextlib.asynccontextmanager
async def serve_process(
    env: Mapping[str, str],
    log: Path,
    *,
    workers: int = 1,
    credentials: grpc.ChannelCredentials | None = None,
) -> AsyncIterator[ServerProcess]:
    """Start ``watchword serve`` on a free loopback port; SIGTERM it on exit.

    ``credentials``: what to wait for its health with, for a server that serves TLS.
    """
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "watchword_server", "serve", "--listen", address]
    if workers > 1:
        argv += ["--workers", str(workers)]
    with log.open("ab") as output:
        process = subprocess.Popen(argv, env=dict(env), stdout=output, stderr=subprocess.STDOUT)
    server = ServerProcess(process, address, log)
    try:
        await _wait_serving(server, credentials)
        yield server
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.stop()


_OWNER = re.compile(r":(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)")


def connection_owners(port: int) -> dict[int, int]:
    """Client port -> pid of the process holding the accepted end, for connections to
    ``port`` on this machine (read with ``ss`` from iproute2)."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    owners: dict[int, int] = {}
    for line in listing.splitlines():
        match = _OWNER.search(line)
        if match:
            owners[int(match.group(1))] = int(match.group(2))
    return owners
