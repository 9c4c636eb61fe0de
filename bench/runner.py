"""One benchmark run: the scenarios in an order that starts each server configuration once.

A scenario that fails (a refused h2load run, a server that would not start) is reported
as failed, with its traceback on standard error, and the others still run: a benchmark
that stops at the first problem hides the rest of the picture.
"""

from __future__ import annotations

import datetime
import subprocess
import time
import traceback
from collections.abc import Callable, Sequence

from bench.h2load import find_h2load
from bench.options import SCENARIOS, Options
from bench.results import Figure, Report
from bench.scenarios import batch, client, instructions, logins, scale, throughput
from bench.stage import Database, Role, Stage, cores, open_stage, progress, server_settings
from tests.support.postgres import connect

__all__ = ["run"]

_NAMES = {
    "B1": "checks ÷ Health/Check",
    "B1i": "warm checks ÷ Health/Check, instructions",
    "B2": "Authenticate req/s ÷ hashing bound",
    "B3": "check p99 during a login storm ÷ idle",
    "B4": "check p50, large ÷ small database, caches off",
    "B5": "100 single checks ÷ one BatchCheck, wall time",
    "B6": "cached requires check, overhead per call",
    "B7": "Authenticate p50 ÷ its hash, pbkdf2(2000,20,sha512)",
    "workers": "workers-N ÷ workers-1 req/s",
}
_METHODS = {
    "B1": throughput.B1_METHOD,
    "B1i": instructions.B1I_METHOD,
    "B2": logins.B2_METHOD,
    "B3": logins.B3_METHOD,
    "B4": scale.B4_METHOD,
    "B5": batch.B5_METHOD,
    "B6": client.B6_METHOD,
    "B7": logins.B7_METHOD,
    "workers": throughput.WORKERS_METHOD,
}


class _Run:
    """The report being filled, and what failed."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.report = Report()

    def attempt(self, scenario: str, measure: Callable[[], Sequence[Figure]]) -> None:
        """Run one scenario; its figures, or a failed line."""
        try:
            figures = list(measure())
        except Exception as error:  # reported, and the other scenarios still run
            self.fail([scenario], error)
            return
        self.report.add(figures, _METHODS[scenario])

    def missing(self, scenarios: Sequence[str], since: int) -> list[str]:
        """Those of ``scenarios`` with no line among the figures from index ``since`` on."""
        reported = {figure.id for figure in self.report.figures[since:]}
        return [scenario for scenario in scenarios if scenario not in reported]

    def fail(self, scenarios: Sequence[str], error: Exception) -> None:
        """Report ``scenarios`` as failed because of ``error``."""
        self.stage.keep_logs = True
        traceback.print_exception(error)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        for scenario in scenarios:
            progress(f"{scenario} failed: {reason}")
            self.report.add(
                [Figure.missing(scenario, _NAMES[scenario], f"failed: {reason}")],
                _METHODS[scenario],
            )


def _everyday(run: _Run, options: Options) -> None:
    """The scenarios on a server with the caches as shipped: B1, B5, B6, B2, B3, and
    workers (that server is workers-1; workers-N starts beside it)."""
    wanted = [s for s in ("B1", "B5", "B6", "B2", "B3", "workers") if options.wants(s)]
    if not wanted:
        return
    stage = run.stage
    settings = server_settings(options)
    roles = {"everyday": Role(settings)}
    if options.wants("workers"):
        unavailable = throughput.workers_unavailable()
        if unavailable is not None:
            run.report.add([unavailable], _METHODS["workers"])
            wanted.remove("workers")
        else:
            many = f"workers-{throughput.workers_count()}"
            roles[many] = Role(settings, workers=throughput.workers_count())
    since = len(run.report.figures)
    try:
        with stage.servers(roles) as servers:
            server = servers["everyday"]
            if options.wants("B1"):
                run.attempt("B1", lambda: throughput.b1(stage, server, caches=True))
            if options.wants("B5"):
                run.attempt("B5", lambda: batch.b5(stage, server))
            if options.wants("B6"):
                run.attempt("B6", lambda: client.b6(stage, server))
            storm: list[logins.Logins] = []
            if options.wants("B2"):

                def b2() -> list[Figure]:
                    figures, measured = logins.b2(stage, server)
                    storm.append(measured)
                    return figures

                run.attempt("B2", b2)
            if options.wants("B3"):
                run.attempt("B3", lambda: logins.b3(stage, server, storm[0] if storm else None))
            if "workers" in wanted:
                run.attempt("workers", lambda: throughput.workers(stage, server, servers[many]))
    except Exception as error:  # a server did not start (or stop)
        run.fail(run.missing(wanted, since), error)


def _others(run: _Run, options: Options) -> None:
    """B1 with the caches off, B4 (with ``--large``) beside it, and B7 on servers of
    their own, started together."""
    stage = run.stage
    wanted = [s for s in ("B1", "B4", "B7") if options.wants(s)]
    if "B4" in wanted and not options.large:
        run.report.add(
            [Figure.missing("B4", _NAMES["B4"], "skipped: needs --large")], _METHODS["B4"]
        )
        wanted.remove("B4")
    if not wanted:
        return
    since = len(run.report.figures)
    cold = server_settings(options, caches=False)
    roles = {}
    if "B1" in wanted or "B4" in wanted:
        roles["caches-off"] = Role(cold)
    if "B1" in wanted:
        roles["nothing-cached"] = Role(server_settings(options, caches=False, key_cache=False))
    large: Database | None = None
    if "B4" in wanted:
        try:
            large = stage.database("large", options.large_users)
            roles["large"] = Role(cold, database=large)
        except Exception as error:
            run.fail(["B4"], error)
            wanted.remove("B4")
    if "B7" in wanted:
        roles["pbkdf2"] = Role(logins.B7_SETTINGS)
    if not roles:
        return
    try:
        with stage.servers(roles) as servers:
            if "B1" in wanted:
                run.attempt("B1", lambda: throughput.b1(stage, servers["caches-off"], caches=False))
                run.attempt(
                    "B1",
                    lambda: throughput.b1(
                        stage, servers["nothing-cached"], caches=False, key_cache=False
                    ),
                )
            if large is not None:
                large_db = large
                run.attempt(
                    "B4",
                    lambda: scale.b4(stage, large_db, servers["caches-off"], servers["large"]),
                )
            if "B7" in wanted:
                run.attempt("B7", lambda: logins.b7(stage, servers["pbkdf2"]))
    except Exception as error:  # a server did not start (or stop)
        run.fail(run.missing(wanted, since), error)


def _instructions(run: _Run, options: Options) -> None:
    """B1i, on a server of its own under callgrind (``--instructions``)."""
    if not options.wants("B1i"):
        return
    if not options.instructions:
        figure = Figure.missing("B1i", _NAMES["B1i"], "skipped: needs --instructions")
        run.report.add([figure], _METHODS["B1i"])
        return
    unavailable = instructions.callgrind_unavailable()
    if unavailable is not None:
        run.report.add([unavailable], _METHODS["B1i"])
        return
    stage = run.stage
    callgrind = instructions.Callgrind(stage.logs)
    role = Role(server_settings(options), wrapper=callgrind.prefix())
    since = len(run.report.figures)
    try:
        with stage.servers({"callgrind": role}) as servers:
            run.attempt(
                "B1i",
                lambda: instructions.b1_instructions(
                    stage, servers["callgrind"], callgrind, options.instruction_calls
                ),
            )
    except Exception as error:  # the server did not start (or stop)
        run.fail(run.missing(["B1i"], since), error)


def _context(stage: Stage) -> dict[str, object]:
    with connect(stage.everyday.url, autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    version = subprocess.run(  # noqa: S603 - the h2load binary found on PATH
        [find_h2load(), "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    options = stage.options
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cores": cores(),
        "postgresql": row[0] if row else "?",
        "h2load": version,
        "options": {
            "duration": options.duration,
            "warmup": options.warmup,
            "rounds": options.rounds,
            "users": options.users,
            "large": options.large,
            "large_users": options.large_users,
            "memberships_per_user": options.memberships_per_user,
            "login_alg": options.login_alg,
            "client_calls": options.client_calls,
            "max_steal": options.max_steal,
            "scenarios": sorted(options.scenarios, key=SCENARIOS.index),
        },
    }


def run(options: Options) -> tuple[Report, bool]:
    """Run the scenarios ``options`` selects; the report and whether all succeeded."""
    find_h2load()  # fail before minutes of set-up, not after
    started = time.monotonic()
    with open_stage(options) as stage:
        current = _Run(stage)
        current.report.context = _context(stage)
        _everyday(current, options)
        _others(current, options)
        _instructions(current, options)
        succeeded = not stage.keep_logs
        steal = stage.steal.summary()
    report = current.report
    report.figures.sort(key=lambda figure: SCENARIOS.index(figure.id))
    report.methods = {s: report.methods[s] for s in SCENARIOS if s in report.methods}
    report.context["seconds"] = round(time.monotonic() - started, 1)
    report.context["steal"] = steal
    return report, succeeded
