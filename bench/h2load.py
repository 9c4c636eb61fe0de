"""Drive one unary gRPC method with h2load, a compiled HTTP/2 load generator.

h2load knows nothing of gRPC, but a unary gRPC call is an HTTP/2 POST whose body is one
length-prefixed message, so a pre-encoded body file is all it needs. What it cannot do is
read ``grpc-status``, which travels in trailers: an error answer is "trailers-only" and
carries no DATA at all. So each call states the answer it expects, and the DATA byte count
h2load reports must be that answer's frame size times the calls done; any other count means
some calls failed, and the run is refused instead of reported.

A few answers vary in size by nature (a login's expiry: its nanoseconds take one to five
bytes), so their byte count cannot prove that every call succeeded. Such a call must be
run for a fixed number of requests and given a :class:`Tally`, something outside h2load
that counts the successes (for logins: the sessions created); the run is refused unless
the tally grew by exactly the calls done.

Runs are subprocesses: :func:`start` returns at once so two loads can overlap (a login
storm beside a check run), and the benchmark process sleeps in ``wait`` meanwhile, leaving
the cores to the server, PostgreSQL and h2load.
"""

from __future__ import annotations

import math
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from google.protobuf.message import Message

__all__ = [
    "Answer",
    "Call",
    "H2loadError",
    "Load",
    "Pending",
    "Run",
    "Tally",
    "find_h2load",
    "grpc_frame",
    "run",
    "start",
]

# What a run may take beyond its nominal length before it is declared hung.
_SLACK_SECONDS = 60.0
# A counted run has no nominal length; this bounds it.
_COUNTED_TIMEOUT = 600.0
# Timed runs in which no call finished, run again twice as long, before one more is final.
_LONGER_TRIES = 3


class H2loadError(RuntimeError):
    """h2load is missing, failed, or the answers were not the expected ones."""


class NothingDone(H2loadError):
    """A timed run ended before any of its calls finished (none failed either)."""


@dataclass(frozen=True)
class Answer:
    """The DATA bytes one successful answer carries: ``low`` to ``high`` (equal if fixed)."""

    low: int
    high: int

    @classmethod
    def exactly(cls, message: Message) -> Answer:
        """The answer is exactly ``message`` (in size): any other byte count is an error."""
        size = _frame_size(message)
        return cls(size, size)

    @classmethod
    def between(cls, smallest: Message, largest: Message) -> Answer:
        """Answers range from ``smallest`` to ``largest`` in size; needs a :class:`Tally`."""
        return cls(_frame_size(smallest), _frame_size(largest))

    @property
    def fixed(self) -> bool:
        """Whether the byte count alone can tell answers from errors."""
        return self.low == self.high


@dataclass(frozen=True)
class Call:
    """One unary RPC to repeat: its path, request, expected answer and metadata."""

    method: str  # e.g. "/watchword.auth.v1.AccessService/HasPermission"
    request: Message
    answer: Answer
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The method's short name, e.g. ``HasPermission``."""
        return self.method.rpartition("/")[2]


@dataclass(frozen=True)
class Load:
    """The shape of a load: requests in flight per connection, and connections."""

    streams: int = 16
    connections: int = 1

    @property
    def in_flight(self) -> int:
        """Requests in flight in all."""
        return self.streams * self.connections


class Tally(Protocol):
    """Counts, outside h2load, the calls of a run that succeeded."""

    def count(self) -> int:
        """The running total (only differences are used)."""
        ...


@dataclass(frozen=True)
class Run:
    """What one h2load run measured."""

    method: str
    requests: int
    seconds: float
    latencies_ms: tuple[float, ...]
    ended: float  # time.monotonic() when h2load exited

    @property
    def rps(self) -> float:
        """Requests per second over the measured period."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """The latency (ms) below which ``share`` (0..1) of the requests finished."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        # Nearest rank: the smallest value with at least `share` of them at or below it.
        index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
        return ordered[index]

    @property
    def p50(self) -> float:
        """Median latency in ms."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def p99(self) -> float:
        """99th percentile latency in ms."""
        return self.percentile(0.99)


def grpc_frame(message: Message) -> bytes:
    """A gRPC length-prefixed message: not compressed, 4-byte big-endian length, body."""
    body = message.SerializeToString()
    return b"\x00" + len(body).to_bytes(4, "big") + body


def _frame_size(message: Message) -> int:
    return 5 + message.ByteSize()


def find_h2load() -> str:
    """The h2load binary, or H2loadError saying how to install it."""
    found = shutil.which("h2load")
    if found is None:
        raise H2loadError(
            "h2load is not installed: `make install` installs it as root on Debian "
            "(`apt-get install nghttp2-client`); elsewhere install nghttp2's h2load"
        )
    return found


class Pending:
    """An h2load run under way; :meth:`wait` collects and checks its result."""

    def __init__(
        self,
        call: Call,
        argv: list[str],
        scratch: tempfile.TemporaryDirectory[str],
        timeout: float,
        tally: Tally | None,
        requests: int | None,
    ) -> None:
        self._call = call
        self._requests = requests
        self._scratch = scratch
        self._timeout = timeout
        self._tally = tally
        self._tally_before = tally.count() if tally is not None else 0
        self._process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait(self) -> Run:
        """Wait for h2load to finish; the run, or H2loadError if any call failed."""
        try:
            try:
                output, errors = self._process.communicate(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.communicate()
                raise H2loadError(
                    f"{self._call.name}: h2load did not finish in {self._timeout:g}s"
                ) from None
            ended = time.monotonic()
            if self._process.returncode != 0:
                raise H2loadError(
                    f"{self._call.name}: h2load failed ({self._process.returncode}): {errors}"
                )
            log = Path(self._scratch.name) / "log"
            run = _parse(self._call, output, _latencies(log), ended)
        finally:
            self._scratch.cleanup()
        if self._requests is not None and run.requests != self._requests:
            raise H2loadError(
                f"{self._call.name}: {run.requests} of {self._requests} requests done"
            )
        if self._tally is not None:
            succeeded = self._tally.count() - self._tally_before
            if succeeded != run.requests:
                raise H2loadError(
                    f"{self._call.name}: {run.requests} answers but {succeeded} successes "
                    "counted: some calls failed; refusing to report this run"
                )
        return run


def start(
    target: str,
    call: Call,
    *,
    load: Load,
    duration: float | None = None,
    requests: int | None = None,
    tally: Tally | None = None,
) -> Pending:
    """Start repeating ``call`` against ``target`` (``host:port``, plain-text HTTP/2).

    Give exactly one of ``duration`` (seconds) and ``requests`` (a count, all of which
    complete). A call whose answer size varies needs ``requests`` and a ``tally``.

    Raises:
        H2loadError: h2load is missing.
        ValueError: the arguments do not fit together.
    """
    if (duration is None) == (requests is None):
        raise ValueError("give exactly one of duration and requests")
    if not call.answer.fixed and (requests is None or tally is None):
        raise ValueError(
            f"{call.name}: its answers vary in size, so only a counted run with a tally "
            "can tell them from errors"
        )
    h2load = find_h2load()
    scratch = tempfile.TemporaryDirectory(prefix="watchword-bench-")
    body = Path(scratch.name) / "body"
    body.write_bytes(grpc_frame(call.request))
    argv = [
        h2load,
        f"--data={body}",
        f"--clients={load.connections}",
        "--threads=1",
        f"--max-concurrent-streams={load.streams}",
        f"--log-file={Path(scratch.name) / 'log'}",
        "--header=content-type: application/grpc",
        "--header=te: trailers",
    ]
    argv += [f"--header={name}: {value}" for name, value in call.metadata.items()]
    if duration is not None:
        # Milliseconds: h2load reads a bare number as whole seconds.
        argv.append(f"--duration={max(1, round(duration * 1000))}ms")
        timeout = duration + _SLACK_SECONDS
    else:
        assert requests is not None
        argv.append(f"--requests={requests}")
        timeout = _COUNTED_TIMEOUT
    argv.append(f"http://{target}{call.method}")
    return Pending(call, argv, scratch, timeout, tally, requests)


def run(
    target: str,
    call: Call,
    *,
    load: Load,
    duration: float | None = None,
    requests: int | None = None,
    tally: Tally | None = None,
) -> Run:
    """:func:`start` and wait: the run, or H2loadError if h2load failed or a call did.

    A timed run in which no call finished (a very short run on a machine whose cores were
    taken for a moment) is run again, twice as long, up to ``_LONGER_TRIES`` times.
    """
    for _ in range(_LONGER_TRIES):
        pending = start(target, call, load=load, duration=duration, requests=requests, tally=tally)
        try:
            return pending.wait()
        except NothingDone:
            if duration is None:
                raise
            duration *= 2
    pending = start(target, call, load=load, duration=duration, requests=requests, tally=tally)
    return pending.wait()


def _latencies(log: Path) -> tuple[float, ...]:
    # One line per request: start (us since epoch), HTTP status (-1: failed), duration (us).
    values = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1] == "200":
            values.append(int(parts[2]) / 1000.0)
    return tuple(values)


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
_DATA = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data")


def _parse(call: Call, output: str, latencies: tuple[float, ...], ended: float) -> Run:
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    data = _DATA.search(output)
    if finished is None or requests is None or data is None:
        raise H2loadError(f"cannot read h2load's output:\n{output}")
    done, succeeded = int(requests.group(3)), int(requests.group(4))
    rate = float(finished.group(3))
    received = int(data.group(3))
    low, high = done * call.answer.low, done * call.answer.high
    if done == 0 and int(requests.group(2)) > 0 and int(requests.group(1)) == 0:
        # A timed run whose calls were all still in flight when it ended measured nothing.
        raise NothingDone(f"{call.name}: no call finished within the run\n{output}")
    if done == 0 or succeeded != done or not low <= received <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        raise H2loadError(
            f"{call.name}: {done} answers ({succeeded} with HTTP status 200) carried "
            f"{received} DATA bytes, expected {expected}: some calls failed (an error "
            f"answer has no DATA) or got another answer; refusing to report this run\n{output}"
        )
    if len(latencies) != done:
        raise H2loadError(f"{call.name}: {done} answers but {len(latencies)} logged latencies")
    return Run(call.method, done, done / rate if rate else 0.0, latencies, ended)
