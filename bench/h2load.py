"""Drive one gRPC method with h2load, a compiled HTTP/2 load generator.

h2load knows nothing of gRPC, but a unary gRPC call is an HTTP/2 POST whose body is one
length-prefixed message, so a pre-encoded body file is all it needs. What it cannot do is
read grpc-status, which travels in trailers: an error answer is "trailers-only" and has no
DATA at all. So each run states the exact answer it expects, and the DATA byte count h2load
reports must be that answer's frame size times the requests done; any other count means some
calls failed, and the run is refused instead of reported.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

__all__ = ["Call", "H2loadError", "Run", "find_h2load", "grpc_frame", "run"]


class H2loadError(RuntimeError):
    """h2load is missing, failed, or the answers were not the expected ones."""


@dataclass(frozen=True)
class Call:
    """One unary RPC to repeat: its path, request, exact expected answer and metadata."""

    method: str  # e.g. "/watchword.auth.v1.AccessService/HasPermission"
    request: Message
    expected: Message
    metadata: Mapping[str, str]

    @property
    def answer_bytes(self) -> int:
        """DATA bytes of one expected answer: the 5-byte gRPC frame header and the message."""
        return 5 + self.expected.ByteSize()


@dataclass(frozen=True)
class Run:
    """What one h2load run measured."""

    method: str
    requests: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def rps(self) -> float:
        """Requests per second over the measured period."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        """The latency (ms) below which ``share`` (0..1) of the requests finished."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
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


def find_h2load() -> str:
    """The h2load binary, or H2loadError saying how to install it."""
    found = shutil.which("h2load")
    if found is None:
        raise H2loadError(
            "h2load is not installed: `apt-get install nghttp2-client` (Debian) provides it"
        )
    return found


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")
_DATA = re.compile(r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data")


def run(
    target: str,
    call: Call,
    *,
    duration: float,
    streams: int = 16,
    connections: int = 1,
    warmup: float = 1.0,
    rate: int | None = None,
) -> Run:
    """Repeat ``call`` against ``target`` (``host:port``) for ``duration`` seconds.

    Args:
        target: the server's ``host:port`` (plain-text HTTP/2).
        call: what to send and the exact answer to expect.
        duration: seconds measured, after ``warmup`` seconds that are not.
        streams: requests in flight per connection.
        connections: client connections (each its own stream budget).
        warmup: seconds of load before the measurement starts.
        rate: if set, requests per second per connection instead of as fast as answered.

    Raises:
        H2loadError: h2load failed, or an answer was not the expected one.
    """
    if warmup > 0:
        # A run of its own: h2load's --warm-up-time still counts the warm-up's DATA bytes.
        run(target, call, duration=warmup, streams=streams, connections=connections, warmup=0)
    h2load = find_h2load()
    with tempfile.TemporaryDirectory(prefix="watchword-bench-") as scratch:
        body = Path(scratch) / "body"
        body.write_bytes(grpc_frame(call.request))
        log = Path(scratch) / "log"
        argv = [
            h2load,
            f"--data={body}",
            f"--clients={connections}",
            "--threads=1",
            f"--max-concurrent-streams={streams}",
            f"--duration={duration:g}",
            f"--log-file={log}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
        ]
        argv += [f"--header={name}: {value}" for name, value in call.metadata.items()]
        if rate is not None:
            argv.append(f"--rps={rate}")
        argv.append(f"http://{target}{call.method}")
        completed = subprocess.run(  # noqa: S603 - our own argv, no shell
            argv, capture_output=True, text=True, timeout=duration + warmup + 60, check=False
        )
        output = completed.stdout
        if completed.returncode != 0:
            raise H2loadError(f"h2load failed ({completed.returncode}): {completed.stderr}")
        latencies = _latencies(log)
    return _parse(call, output, latencies)


def _latencies(log: Path) -> tuple[float, ...]:
    # One line per request: start (us since epoch), HTTP status, duration (us).
    values = []
    for line in log.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            values.append(int(parts[2]) / 1000.0)
    return tuple(values)


def _parse(call: Call, output: str, latencies: tuple[float, ...]) -> Run:
    finished = _FINISHED.search(output)
    requests = _REQUESTS.search(output)
    data = _DATA.search(output)
    if finished is None or requests is None or data is None:
        raise H2loadError(f"cannot read h2load's output:\n{output}")
    done, succeeded = int(requests.group(3)), int(requests.group(4))
    rate = float(finished.group(3))
    seconds = done / rate if rate else 0.0
    received = int(data.group(3))
    expected = done * call.answer_bytes
    if done == 0 or succeeded != done or received != expected:
        raise H2loadError(
            f"{call.method}: {done} answers carried {received} DATA bytes, expected "
            f"{expected} ({call.answer_bytes} each): some calls failed (an error answer has "
            f"no DATA); refusing to report this run\n{output}"
        )
    return Run(call.method, done, seconds, latencies)
