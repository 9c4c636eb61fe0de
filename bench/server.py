"""A real ``watchword serve`` process for the benchmark, on a database of its own.

The server runs as a separate process, configured only through ``WATCHWORD_*`` variables
as an operator would configure it, so the benchmark measures what gets deployed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

__all__ = [
    "BENCH_PEPPER",
    "ServerProcess",
    "ServerSpec",
    "cli",
    "serve",
    "workers_supported",
]

BENCH_PEPPER = "bench-pepper-0123456789abcdef"
_READY_TIMEOUT = 60.0
# Each worker says this once it listens; the supervisor's own health says nothing of the rest.
_SERVING_LINE = b"watchword is serving on"

# Every run is the same server configuration apart from what a scenario sets.
_BASE_SETTINGS = {
    "HMAC_KEY": BENCH_PEPPER,
    "REGISTRATION_VERIFICATION": "false",
    # Logins repeat the same account from one address far beyond any sane throttle.
    "LOGIN_MAX_FAILURES": "0",
    "LOGIN_MAX_FAILURES_PER_CLIENT": "0",
    "GRACE_PERIOD": "1",
    "SHUTDOWN_DRAIN_SECONDS": "0",
    # A session slides (and its Introspect answer changes) after a tenth of its window:
    # a day keeps that out of any run.
    "SESSION_EXPIRATION": "86400",
}


@dataclass(frozen=True)
class ServerProcess:
    """A started server: where it listens, its process id and its log."""

    target: str
    pid: int
    log: Path


def _environment(database_url: str, settings: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWORD_")}
    env["WATCHWORD_DATABASE_URL"] = database_url
    env.update({f"WATCHWORD_{name}": value for name, value in _BASE_SETTINGS.items()})
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


@functools.cache
def workers_supported() -> bool:
    """Whether this server has ``watchword serve --workers N``."""
    completed = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "watchword_server", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return completed.returncode == 0 and "--workers" in completed.stdout


def _wait_serving(
    target: str,
    process: subprocess.Popen[bytes],
    log: Path,
    offset: int,
    workers: int,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    healthy = False
    with grpc.insecure_channel(target) as channel:
        # The health stubs' types lack the methods the generated class adds.
        stub: Any = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{_tail(log, offset)}")
            if not healthy:
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    healthy = reply.status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    pass
            # With several workers, one answering says nothing of the others.
            if healthy and _serving_lines(log, offset) >= workers:
                return
            time.sleep(0.1)
    raise RuntimeError(f"the server did not come up on {target}:\n{_tail(log, offset)}")


def _serving_lines(log: Path, offset: int) -> int:
    with log.open("rb") as file:
        file.seek(offset)
        return file.read().count(_SERVING_LINE)


def _tail(log: Path, offset: int) -> str:
    with log.open("rb") as file:
        file.seek(offset)
        return file.read()[-4000:].decode(errors="replace")


@dataclass(frozen=True)
class ServerSpec:
    """A server to start.

    Attributes:
        database_url: the migrated database to serve.
        port: a free port on 127.0.0.1.
        log: the file the server's output is appended to.
        settings: setting name (``check_cache_max_staleness``) -> value, as WATCHWORD_*.
        workers: ``--workers N``; 1 runs the plain single process.
    """

    database_url: str
    port: int
    log: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    wrapper: tuple[str, ...] = ()
    """A command line the server runs under (valgrind's), which also gives it ten times
    as long to start."""


@contextlib.contextmanager
def serve(specs: Sequence[ServerSpec]) -> Iterator[list[ServerProcess]]:
    """Start ``watchword serve`` for each spec, all at once (start-up is mostly imports,
    which overlap well), wait until every one serves, and stop them (SIGTERM) on exit."""
    started: list[tuple[ServerSpec, subprocess.Popen[bytes], int]] = []
    try:
        for spec in specs:
            target = f"127.0.0.1:{spec.port}"
            argv = [*spec.wrapper, sys.executable, "-m", "watchword_server", "serve"]
            argv += ["--listen", target]
            if spec.workers != 1:
                argv += ["--workers", str(spec.workers)]
            offset = spec.log.stat().st_size if spec.log.exists() else 0
            with spec.log.open("ab") as output:
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                    argv,
                    env=_environment(spec.database_url, spec.settings),
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            started.append((spec, process, offset))
        servers = []
        for spec, process, offset in started:
            target = f"127.0.0.1:{spec.port}"
            timeout = _READY_TIMEOUT * (10 if spec.wrapper else 1)
            _wait_serving(target, process, spec.log, offset, spec.workers, timeout)
            servers.append(ServerProcess(target=target, pid=process.pid, log=spec.log))
        yield servers
    finally:
        for _, process, _ in started:
            process.terminate()
        for _, process, _ in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
