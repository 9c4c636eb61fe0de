"""``watchword serve --workers N``: N server processes sharing one port.

One Python process tops out near one core, so N workers each run a whole server (their
own check cache, kept coherent by the same change notices as separate replicas) and bind
the same address with ``SO_REUSEPORT``, which lets the kernel spread connections over them,
as grpc's own multiprocessing example does. That option is the one sanctioned way to share
a port: before starting the workers the supervisor binds the address once *without* it,
so an address that anything else is bound to (an unrelated server, another worker group)
is refused instead of joined.

The supervisor forwards SIGTERM/SIGINT to every worker and waits for them to drain; a
worker that dies on its own is started again, unless workers keep dying at start.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from types import FrameType

from prometheus_client import multiprocess

from watchword_server.runtime.metrics import MULTIPROCESS_DIR, serve_metrics

__all__ = ["AddressInUse", "free_address", "supervise"]

_log = logging.getLogger("watchword.supervisor")

# A worker that dies sooner than this after starting counts as failing at start.
_EARLY_DEATH = 5.0
# Give up after this many early deaths in a row.
_MAX_EARLY_DEATHS = 3


class AddressInUse(Exception):
    """The listen address is taken (or cannot be bound at all)."""


def free_address(listen: str) -> str:
    """Check that ``listen`` can be bound by us alone; returns it with a real port.

    Port 0 is replaced by a port the kernel picks, since every worker must bind the same.

    Raises:
        AddressInUse: something is bound there already, or the host cannot be bound.
    """
    host, _, port = listen.rpartition(":")
    bare_host = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((bare_host, int(port)))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{listen} is already in use") from None
            raise AddressInUse(f"cannot listen on {listen}: {error.strerror}") from None
        chosen = probe.getsockname()[1]
    return f"{host}:{chosen}"


class _Workers:
    def __init__(self, command: Sequence[str], count: int, grace: float) -> None:
        self._command = list(command)
        self._count = count
        self._grace = grace
        self._processes: list[subprocess.Popen[bytes]] = []
        self._started: list[float] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for _ in range(self._count):
            self._processes.append(self._spawn())
            self._started.append(time.monotonic())

    def _spawn(self) -> subprocess.Popen[bytes]:
        # The worker inherits our environment (settings) and standard streams (logs).
        return subprocess.Popen(self._command)  # noqa: S603 - our own interpreter and argv

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self._stopping.set()
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signum)

    def watch(self) -> int:
        """Keep the workers running until stopped; returns the exit status."""
        early_deaths = 0
        while not self._stopping.wait(0.2):
            for index, process in enumerate(self._processes):
                code = process.poll()
                if code is None or self._stopping.is_set():
                    continue
                lived = time.monotonic() - self._started[index]
                early_deaths = early_deaths + 1 if lived < _EARLY_DEATH else 0
                if early_deaths >= _MAX_EARLY_DEATHS:
                    _log.error("workers keep exiting at start (last status %s); giving up", code)
                    self.stop()
                    self._wait()
                    return 1
                _log.warning("worker %d exited with status %s; starting it again", index, code)
                if MULTIPROCESS_DIR in os.environ:  # its gauges no longer count
                    multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]
                self._processes[index] = self._spawn()
                self._started[index] = time.monotonic()
        return self._wait()

    def _wait(self) -> int:
        deadline = time.monotonic() + self._grace + 10.0
        status = 0
        for process in self._processes:
            try:
                code = process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.error("worker %d did not stop in time; killing it", process.pid)
                process.kill()
                code = process.wait()
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                status = 1
        return status


def supervise(
    listen: str,
    count: int,
    *,
    grace: float,
    extra_args: Sequence[str] = (),
    metrics_listen: str | None = None,
) -> int:
    """Run ``count`` workers serving ``listen`` until SIGTERM/SIGINT; returns the exit status.

    With ``metrics_listen``, the supervisor serves one ``/metrics`` for all its workers,
    which write their series to files of a directory of their own (prometheus-client's
    multiprocess mode).

    Raises:
        AddressInUse: the address is taken.
        OSError: the metrics address cannot be bound.
    """
    address = free_address(listen)
    with contextlib.ExitStack() as cleanup:
        if metrics_listen is not None:
            files = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="watchword-metrics-"))
            os.environ[MULTIPROCESS_DIR] = files  # the workers inherit it
            cleanup.callback(os.environ.pop, MULTIPROCESS_DIR, None)
            cleanup.callback(serve_metrics(metrics_listen, None).stop)
        return _supervise(address, count, grace=grace, extra_args=extra_args)


def _supervise(address: str, count: int, *, grace: float, extra_args: Sequence[str]) -> int:
    command = [
        sys.executable,
        "-m",
        "watchword_server",
        "serve",
        "--listen",
        address,
        "--reuse-port",
        *extra_args,
    ]
    workers = _Workers(command, count, grace)

    def forward(signum: int, _frame: FrameType | None) -> None:
        workers.stop(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _log.info("starting %d workers on %s", count, address)
    workers.start()
    return workers.watch()
