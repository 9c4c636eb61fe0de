"""B1i: B1's warm ratios counted in instructions, which no other tenant of the machine moves.

Requests per second on this machine swing by tens of percent from one run to the next with
the CPU the hypervisor steals (``bench/steal.py``); the instructions a server executes per
call do not. The server runs under callgrind (valgrind's instruction counter, on every
machine kind here), and for each call the counters are zeroed, a counted h2load run made,
and the total dumped: instructions per call. Under callgrind the server is some fifty
times slower, so its background work (gRPC's pollers, the periodic jobs) is counted for
fifty times longer than it would run per call natively: its rate, measured while the
server idles, is taken off each run's count for its duration.

Off by default (a run takes a few minutes): ``--instructions``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench import calls, seed
from bench.h2load import Call, Load
from bench.h2load import run as h2load_run
from bench.results import Figure, at_least
from bench.server import ServerProcess
from bench.stage import Stage, progress

__all__ = [
    "B1I_METHOD",
    "Callgrind",
    "b1_instructions",
    "callgrind_unavailable",
    "total_instructions",
]

B1I_METHOD = (
    "instructions per call of Health/Check ÷ of each check (warm caches), the server under "
    "valgrind --tool=callgrind, h2load at 16 in flight on one connection, one counted run "
    "of --instruction-calls calls each after 500 unmeasured; the background's rate while "
    "idle (10 s) is taken off each run for its duration. Steal-free: the same build counts "
    "the same within a few percent."
)

_LOAD = Load(streams=16, connections=1)
_WARM_CALLS = 500
_IDLE_SECONDS = 10.0
_SUMMARY = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def callgrind_unavailable() -> Figure | None:
    """The figure to report when valgrind or callgrind_control is missing, else None."""
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if not missing:
        return None
    return Figure.missing(
        "B1i",
        "warm checks ÷ Health/Check, instructions",
        f"not available: {', '.join(missing)} not found (Debian's valgrind)",
    )


def total_instructions(dump: Path) -> int:
    """The instructions a callgrind dump counts in all."""
    found = _SUMMARY.search(dump.read_bytes())
    if found is None:
        raise ValueError(f"{dump}: no summary line; not a callgrind dump")
    return int(found.group(1))


@dataclass(frozen=True)
class Callgrind:
    """How a server is run under callgrind, and its counters read."""

    out_dir: Path

    def prefix(self) -> tuple[str, ...]:
        """The command line that goes before the server's own."""
        return (
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={self.out_dir}/callgrind.out.%p",
            "--dump-instr=no",
        )

    def zero(self, pid: int) -> None:
        """Zero the counters of the server ``pid``."""
        _control("-z", pid)

    def dump(self, pid: int) -> int:
        """Dump the counters of the server ``pid``: the instructions since the last zero."""
        before = set(self.out_dir.glob(f"callgrind.out.{pid}.*"))
        _control("-d", pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = set(self.out_dir.glob(f"callgrind.out.{pid}.*")) - before
            if new:
                dump = max(new, key=lambda path: path.stat().st_mtime)
                try:
                    return total_instructions(dump)
                except ValueError:
                    pass  # still being written
            time.sleep(0.2)
        raise RuntimeError(f"callgrind wrote no dump for {pid} in 30 s")


def _control(flag: str, pid: int) -> None:
    subprocess.run(  # noqa: S603 - valgrind's own tool, our arguments
        ["callgrind_control", flag, str(pid)],  # noqa: S607 - found on PATH as installed
        check=True,
        capture_output=True,
        timeout=60,
    )


def b1_instructions(
    stage: Stage, server: ServerProcess, callgrind: Callgrind, calls_per_run: int
) -> list[Figure]:
    """B1i on ``server``, which runs under ``callgrind`` with the caches as shipped."""
    everyday = stage.everyday
    token = stage.session_token(server)
    health = calls.health(server.target)
    checks: dict[str, Call] = {
        "HasPermission": calls.has_permission(
            server.target, everyday.access_key, everyday.seeded.checked_user_id
        ),
        "HasMembership": calls.has_membership(
            server.target, everyday.access_key, token, seed.CHECKED_GROUP
        ),
        "Introspect": calls.introspect(server.target, token),
    }
    for call in (health, *checks.values()):
        h2load_run(server.target, call, load=_LOAD, requests=_WARM_CALLS)
    callgrind.zero(server.pid)
    time.sleep(_IDLE_SECONDS)
    idle_rate = callgrind.dump(server.pid) / _IDLE_SECONDS
    progress(f"B1i: {calls_per_run:,} calls each of Health and 3 checks under callgrind")

    def per_call(call: Call) -> float:
        callgrind.zero(server.pid)
        started = time.monotonic()
        h2load_run(server.target, call, load=_LOAD, requests=calls_per_run)
        elapsed = time.monotonic() - started
        counted = callgrind.dump(server.pid)
        return (counted - idle_rate * elapsed) / calls_per_run

    reference = per_call(health)
    figures = []
    for name, call in checks.items():
        check = per_call(call)
        figures.append(
            Figure(
                "B1i",
                f"{name} ÷ Health/Check, warm caches, instructions",
                reference / check,
                target=at_least(0.9),
                detail=f"{check:,.0f} vs {reference:,.0f} instructions per call",
                numbers={
                    "check_per_call": round(check),
                    "health_per_call": round(reference),
                    "idle_per_second": round(idle_rate),
                },
            )
        )
    return figures
