"""A real ``watchword serve`` process for the benchmark, on a database of its own."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = ["BENCH_PEPPER", "ServerProcess", "cli", "serve"]

BENCH_PEPPER = "bench-pepper-0123456789abcdef"
_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class ServerProcess:
    """A started server: where it listens and its process id."""

    target: str
    pid: int


def _environment(database_url: str, settings: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWORD_")}
    env.update(
        {
            "WATCHWORD_DATABASE_URL": database_url,
            "WATCHWORD_HMAC_KEY": BENCH_PEPPER,
            "WATCHWORD_REGISTRATION_VERIFICATION": "false",
            "WATCHWORD_LOGIN_MAX_FAILURES": "0",
            "WATCHWORD_LOGIN_MAX_FAILURES_PER_CLIENT": "0",
            "WATCHWORD_GRACE_PERIOD": "1",
        }
    )
    env.update({f"WATCHWORD_{name.upper()}": value for name, value in settings.items()})
    return env


def cli(database_url: str, *arguments: str, settings: Mapping[str, str] | None = None) -> str:
    """Run ``watchword ARGUMENTS`` against the database; returns its standard output."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "watchword_server", *arguments],
        env=_environment(database_url, settings or {}),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"watchword {' '.join(arguments)} failed:\n{completed.stderr}")
    return completed.stdout


def _wait_serving(target: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{log.read_text()[-4000:]}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"the server did not come up on {target}:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def serve(
    database_url: str,
    port: int,
    log: Path,
    *,
    settings: Mapping[str, str] | None = None,
    workers: int = 1,
) -> Iterator[ServerProcess]:
    """Start ``watchword serve`` on ``127.0.0.1:port`` and stop it (SIGTERM) on exit."""
    target = f"127.0.0.1:{port}"
    argv = [sys.executable, "-m", "watchword_server", "serve", "--listen", target]
    if workers != 1:
        argv += ["--workers", str(workers)]
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            env=_environment(database_url, settings or {}),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_serving(target, process, log)
        yield ServerProcess(target=target, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
