"""B1 (checks ÷ the stack's no-op) and workers-N ÷ workers-1: requests per second.

Both are throughput at a fixed number of requests in flight, so each ratio compares two
runs of the same load shape. B1 uses the issue's shape (16 in flight on one connection);
workers spread 32 over 8 connections, since ``SO_REUSEPORT`` spreads connections, not
requests, over the worker processes.
"""

from __future__ import annotations

import functools
import statistics

from bench import calls, seed
from bench.h2load import Call, Load, Run
from bench.interleave import Triple, interleave, median_of
from bench.results import Figure, Target, at_least
from bench.server import ServerProcess, workers_supported
from bench.stage import Driver, Stage, cores, progress

__all__ = [
    "B1_METHOD",
    "WORKERS_METHOD",
    "b1",
    "workers",
    "workers_count",
    "workers_name",
    "workers_unavailable",
]

B1_LOAD = Load(streams=16, connections=1)
WORKERS_LOAD = Load(streams=4, connections=8)

B1_METHOD = (
    "req/s of each check ÷ req/s of Health/Check on the same server, h2load at 16 in "
    "flight on one connection; each check run sits between two Health runs (their mean is "
    "its reference); median of the per-run ratios over the rounds. Warm: caches as shipped "
    "(check_cache_max_staleness 30 s); off: check_cache_max_staleness 0 (answers and "
    "sessions uncached, service keys still cached: one query per check); nothing cached: "
    "service_key_cache_max_staleness 0 as well (two queries per keyed check)."
)
WORKERS_METHOD = (
    "req/s of HasPermission (warm caches) on `serve --workers N` ÷ on a plain server (what "
    "`--workers 1` runs), both up side by side on one database and driven in turn, 32 in "
    "flight over 8 connections; median of the per-run ratios. A gain needs more cores "
    "than the server, PostgreSQL and h2load share here."
)


def _rps(run: Run) -> float:
    return run.rps


def _rps_ratio(triple: Triple[Run, Run]) -> float:
    return triple.subject.rps / triple.reference(_rps)


def b1(
    stage: Stage, server: ServerProcess, *, caches: bool, key_cache: bool = True
) -> list[Figure]:
    """B1 with caches as shipped (``caches``) or off, and the service-key cache on or off
    (``key_cache``), on ``server`` (configured so)."""
    options = stage.options
    everyday = stage.everyday
    token = stage.session_token(server)
    checks: dict[str, Call] = {
        "HasPermission": calls.has_permission(
            server.target, everyday.access_key, everyday.seeded.checked_user_id
        ),
        "HasMembership": calls.has_membership(
            server.target, everyday.access_key, token, seed.CHECKED_GROUP
        ),
        "Introspect": calls.introspect(server.target, token),
    }
    health = calls.health(server.target)
    driver = Driver(server, options)
    label = "warm caches" if caches else "caches off" if key_cache else "nothing cached"
    progress(f"B1, {label}: {options.rounds} rounds of Health and 3 checks")
    triples = interleave(
        lambda: driver.run(health, B1_LOAD),
        {name: functools.partial(driver.run, call, B1_LOAD) for name, call in checks.items()},
        options.rounds,
        guard=stage.steal,
    )
    target: Target = at_least(0.9) if caches else at_least(0.5)
    figures = []
    for name, measured in triples.items():
        check_rps = statistics.median(t.subject.rps for t in measured)
        health_rps = statistics.median(t.reference(_rps) for t in measured)
        p50 = statistics.median(t.subject.p50 for t in measured)
        figures.append(
            Figure(
                "B1",
                f"{name} ÷ Health/Check, {label}",
                median_of(measured, _rps_ratio),
                target=target,
                detail=f"{check_rps:,.0f} vs {health_rps:,.0f} req/s, p50 {p50:.1f} ms",
                numbers={"rps": check_rps, "health_rps": health_rps, "p50_ms": p50},
            )
        )
    return figures


def workers_count() -> int:
    """N of workers-N: the cores here, at least 2."""
    return max(2, cores())


def workers_name() -> str:
    """The figure's name, which says N and the cores."""
    return f"workers-{workers_count()} ÷ workers-1 req/s, {cores()} cores"


def workers_unavailable() -> Figure | None:
    """The figure to report when this server has no ``--workers``, else ``None``."""
    if workers_supported():
        return None
    return Figure.missing(
        "workers", workers_name(), "not available: this server has no `watchword serve --workers`"
    )


def workers(stage: Stage, one: ServerProcess, many: ServerProcess) -> list[Figure]:
    """workers-N ÷ workers-1 req/s: ``one`` is a plain server (what ``--workers 1`` runs),
    ``many`` runs :func:`workers_count` workers; both with the everyday settings."""
    options = stage.options
    everyday = stage.everyday
    user = everyday.seeded.checked_user_id
    call_one = calls.has_permission(one.target, everyday.access_key, user)
    call_many = calls.has_permission(many.target, everyday.access_key, user)
    driver_one, driver_many = Driver(one, options), Driver(many, options)
    progress(f"workers: {options.rounds} rounds of workers-1 and workers-{workers_count()}")
    triples = interleave(
        lambda: driver_one.run(call_one, WORKERS_LOAD),
        {"many": lambda: driver_many.run(call_many, WORKERS_LOAD)},
        options.rounds,
        guard=stage.steal,
    )["many"]
    many_rps = statistics.median(t.subject.rps for t in triples)
    one_rps = statistics.median(t.reference(_rps) for t in triples)
    return [
        Figure(
            "workers",
            workers_name(),
            median_of(triples, _rps_ratio),
            detail=f"{many_rps:,.0f} vs {one_rps:,.0f} req/s",
            numbers={
                "workers": workers_count(),
                "cores": cores(),
                "rps": many_rps,
                "workers_1_rps": one_rps,
            },
        )
    ]
