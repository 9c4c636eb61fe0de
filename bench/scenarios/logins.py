"""Logins: B2 (against the hashing bound), B3 (checks during a login storm), B7 (what a
login costs beyond its hash).

A login's answer varies in size, so every Authenticate run is counted (a fixed number of
requests, all of which complete) and checked against the sessions it created; the number
of requests is chosen from the rate of the unmeasured warm-up, so a run lasts about the
configured duration. Hash times are measured in this process with the server's own
hasher while nothing else runs (between load runs), interleaved like every other
reference.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import calls, seed
from bench.h2load import Call, H2loadError, Load, Run
from bench.h2load import run as h2load_run
from bench.h2load import start as h2load_start
from bench.interleave import Triple, interleave, median_of
from bench.options import PBKDF2_ALG
from bench.results import Figure, at_least, at_most
from bench.server import BENCH_PEPPER, ServerProcess
from bench.stage import PBKDF2_EMAIL, Driver, SessionTally, Stage, cores, progress
from watchword_server.security.passwords import PasswordHasher, Pepper

__all__ = ["B2_METHOD", "B3_METHOD", "B7_METHOD", "B7_SETTINGS", "Logins", "b2", "b3", "b7"]

STORM_LOAD = Load(streams=8, connections=1)  # below the server's queue bound for logins
CHECK_LOAD = Load(streams=16, connections=1)
SINGLE_LOAD = Load(streams=1, connections=1)

# The storm starts this long (at most half a run) before the check run, so the hashing
# pool is already busy when the measurement starts.
_STORM_LEAD = 0.5
# Headroom in the storm's request count, so it outlasts the check run it surrounds.
_STORM_HEADROOM = 1.3
# In-process hash timing: at least this many calls, for about this long at most (a
# shorter run's duration makes it shorter, for the smoke test).
_HASH_CALLS = 3
_HASH_SECONDS = 0.5

B2_METHOD = (
    "Authenticate req/s at 8 in flight ÷ (cores ÷ one password verify at the configured "
    "cost), the verify timed with the server's PasswordHasher in this process between the "
    "login runs (mean of the timings either side); median over the rounds. Every login is "
    "checked against the sessions it created."
)
B3_METHOD = (
    "HasPermission p99 (16 in flight, one connection, warm caches) while a separate h2load "
    "runs an Authenticate storm (8 in flight) ÷ its p99 idle, idle runs either side of each "
    "storm run; median over the rounds."
)
B7_METHOD = (
    "Authenticate p50 at 1 in flight with hmac_alg pbkdf2(2000,20,sha512) (the seeded "
    "user's hash made alike, so no rehash) ÷ that hash's own verify time in this process "
    "(PasswordHasher.verify, median); median over the rounds."
)


def _hash_seconds(hasher: PasswordHasher, stored: str, budget: float) -> float:
    """The median time of one verify of the benchmark password against ``stored``."""
    times: list[float] = []
    deadline = time.perf_counter() + min(_HASH_SECONDS, budget)
    while len(times) < _HASH_CALLS or time.perf_counter() < deadline:
        started = time.perf_counter()
        if not hasher.verify(seed.BENCH_PASSWORD, stored):
            raise RuntimeError("the benchmark password does not verify")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _hasher(alg: str) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher(alg, Pepper("k1", BENCH_PEPPER.encode()))
    return hasher, hasher.hash(seed.BENCH_PASSWORD)


@dataclass
class Logins:
    """Counted Authenticate runs against one server, sized from a warm-up's rate."""

    server: ServerProcess
    call: Call
    tally: SessionTally
    load: Load
    duration: float
    rate: float = 0.0  # logins per second, from the warm-up and then the last run

    def warm_up(self) -> None:
        """An unmeasured run (the first logins of a server pay for its start-up)."""
        run = self._run(max(2 * self.load.in_flight, 4))
        self.rate = run.rps

    def requests_for(self, seconds: float) -> int:
        """How many logins take about ``seconds`` at the last rate."""
        return max(self.load.in_flight, math.ceil(self.rate * seconds))

    def run(self) -> Run:
        """A measured run of about the configured duration."""
        run = self._run(self.requests_for(self.duration))
        self.rate = run.rps
        return run

    def _run(self, requests: int) -> Run:
        return h2load_run(
            self.server.target, self.call, load=self.load, requests=requests, tally=self.tally
        )


def _logins(stage: Stage, server: ServerProcess, email: str, load: Load) -> Logins:
    call = calls.authenticate(server.target, email, seed.BENCH_PASSWORD)
    logins = Logins(server, call, SessionTally(stage.everyday.url), load, stage.options.duration)
    logins.warm_up()
    return logins


def b2(stage: Stage, server: ServerProcess) -> tuple[list[Figure], Logins]:
    """B2 on ``server`` (the everyday configuration); also returns the storm for B3."""
    options = stage.options
    hasher, stored = _hasher(options.login_alg)
    logins = _logins(stage, server, stage.everyday.seeded.checked_email, STORM_LOAD)
    progress(f"B2: {options.rounds} rounds of Authenticate at {options.login_alg}")
    triples = interleave(
        lambda: _hash_seconds(hasher, stored, options.duration / 2),
        {"logins": logins.run},
        options.rounds,
        guard=stage.steal,
    )["logins"]

    def ratio(triple: Triple[float, Run]) -> float:
        return triple.subject.rps / (cores() / triple.reference(float))

    verify = statistics.median(t.reference(float) for t in triples)
    rps = statistics.median(t.subject.rps for t in triples)
    figure = Figure(
        "B2",
        f"Authenticate req/s ÷ hashing bound, {options.login_alg}",
        median_of(triples, ratio),
        target=at_least(0.9),
        detail=f"{rps:,.1f} vs {cores() / verify:,.1f} req/s ({cores()} cores, "
        f"verify {verify * 1000:.1f} ms)",
        numbers={"rps": rps, "bound_rps": cores() / verify, "verify_ms": verify * 1000},
    )
    return [figure], logins


def b3(stage: Stage, server: ServerProcess, logins: Logins | None) -> list[Figure]:
    """B3 on ``server``; ``logins`` is B2's storm (one is made if B2 did not run)."""
    options = stage.options
    storm = logins or _logins(stage, server, stage.everyday.seeded.checked_email, STORM_LOAD)
    everyday = stage.everyday
    check = calls.has_permission(
        server.target, everyday.access_key, everyday.seeded.checked_user_id
    )
    driver = Driver(server, options)
    progress(f"B3: {options.rounds} rounds of HasPermission idle and during a login storm")
    triples = interleave(
        lambda: driver.run(check, CHECK_LOAD),
        {"storm": lambda: _during_storm(storm, lambda: driver.run(check, CHECK_LOAD))},
        options.rounds,
        guard=stage.steal,
    )["storm"]

    def p99(run: Run) -> float:
        return run.p99

    def ratio(triple: Triple[Run, tuple[Run, Run]]) -> float:
        return triple.subject[0].p99 / triple.reference(p99)

    stormy = statistics.median(t.subject[0].p99 for t in triples)
    idle = statistics.median(t.reference(p99) for t in triples)
    stormy_rps = statistics.median(t.subject[0].rps for t in triples)
    idle_rps = statistics.median(t.reference(lambda run: run.rps) for t in triples)
    storm_rps = statistics.median(t.subject[1].rps for t in triples)
    return [
        Figure(
            "B3",
            "check p99 during a login storm ÷ idle",
            median_of(triples, ratio),
            target=at_most(3),
            detail=f"p99 {stormy:.1f} vs {idle:.1f} ms; {stormy_rps:,.0f} vs {idle_rps:,.0f} "
            f"req/s; {storm_rps:.1f} logins/s",
            numbers={
                "p99_ms": stormy,
                "idle_p99_ms": idle,
                "rps": stormy_rps,
                "idle_rps": idle_rps,
                "logins_rps": storm_rps,
            },
        )
    ]


def _during_storm(storm: Logins, measure: Callable[[], Run]) -> tuple[Run, Run]:
    """``measure`` while ``storm`` runs from before it starts until after it ends."""
    lead = min(_STORM_LEAD, storm.duration / 2)
    requests = storm.requests_for((lead + storm.duration) * _STORM_HEADROOM)
    for _ in range(2):
        pending = h2load_start(
            storm.server.target, storm.call, load=storm.load, requests=requests, tally=storm.tally
        )
        time.sleep(lead)
        measured = measure()
        logins = pending.wait()
        if logins.ended >= measured.ended:
            return measured, logins
        # Checks ran faster than at the warm-up and the storm ran out first: retry longer.
        requests *= 2
    raise H2loadError("the login storm kept ending before the check run it should surround")


B7_SETTINGS = {"hmac_alg": PBKDF2_ALG}


def b7(stage: Stage, server: ServerProcess) -> list[Figure]:
    """B7 on ``server`` (configured with :data:`B7_SETTINGS`), logging in the PBKDF2 user."""
    options = stage.options
    hasher, stored = _hasher(PBKDF2_ALG)
    logins = _logins(stage, server, PBKDF2_EMAIL, SINGLE_LOAD)
    progress(f"B7: {options.rounds} rounds of Authenticate at {PBKDF2_ALG}, 1 in flight")
    triples = interleave(
        lambda: _hash_seconds(hasher, stored, options.duration / 2),
        {"logins": logins.run},
        options.rounds,
        guard=stage.steal,
    )["logins"]

    def ratio(triple: Triple[float, Run]) -> float:
        return triple.subject.p50 / (triple.reference(float) * 1000)

    p50 = statistics.median(t.subject.p50 for t in triples)
    verify = statistics.median(t.reference(float) for t in triples) * 1000
    return [
        Figure(
            "B7",
            "Authenticate p50 ÷ its hash, pbkdf2(2000,20,sha512)",
            median_of(triples, ratio),
            target=at_most(2.5),
            detail=f"p50 {p50:.2f} ms vs verify {verify:.2f} ms",
            numbers={"p50_ms": p50, "verify_ms": verify},
        )
    ]
