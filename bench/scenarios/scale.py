"""B4: a check on a big database against the same check on a small one, caches off.

Only with ``--large``: the runner first builds a database of a million users (five
million memberships by default), which takes a minute or two. Two servers with the cache
off, one per database, are up side by side and driven in turn with the same load, so the
ratio shows what the size costs a check that reads the database every time.
"""

from __future__ import annotations

import statistics

from bench import calls
from bench.h2load import Load, Run
from bench.interleave import Triple, interleave, median_of
from bench.results import Figure, at_most
from bench.server import ServerProcess
from bench.stage import Database, Driver, Stage, progress

__all__ = ["B4_METHOD", "b4", "b4_name"]

LOAD = Load(streams=16, connections=1)

B4_METHOD = (
    "HasPermission p50 (user id; 16 in flight, one connection; caches off) on the large "
    "database ÷ on the everyday one, two servers up side by side and driven in turn, each "
    "large run between two small ones; median over the rounds."
)


def b4_name(stage: Stage) -> str:
    """The figure's name, which says the sizes compared."""
    options = stage.options
    return f"check p50, {options.large_users:,} users ÷ {options.users:,} users, caches off"


def _p50(run: Run) -> float:
    return run.p50


def b4(
    stage: Stage, large: Database, small_server: ServerProcess, large_server: ServerProcess
) -> list[Figure]:
    """B4: ``small_server`` serves the everyday database and ``large_server`` the
    ``large`` one, both with the caches off."""
    options = stage.options
    small = stage.everyday
    small_call = calls.has_permission(
        small_server.target, small.access_key, small.seeded.checked_user_id
    )
    large_call = calls.has_permission(
        large_server.target, large.access_key, large.seeded.checked_user_id
    )
    small_driver = Driver(small_server, options)
    large_driver = Driver(large_server, options)
    progress(f"B4: {options.rounds} rounds of HasPermission on the small and large databases")
    triples = interleave(
        lambda: small_driver.run(small_call, LOAD),
        {"large": lambda: large_driver.run(large_call, LOAD)},
        options.rounds,
        guard=stage.steal,
    )["large"]

    def ratio(triple: Triple[Run, Run]) -> float:
        return triple.subject.p50 / triple.reference(_p50)

    large_ms = statistics.median(t.subject.p50 for t in triples)
    small_ms = statistics.median(t.reference(_p50) for t in triples)
    return [
        Figure(
            "B4",
            b4_name(stage),
            median_of(triples, ratio),
            target=at_most(1.2),
            detail=f"p50 {large_ms:.2f} vs {small_ms:.2f} ms; "
            f"{large.seeded.memberships:,} memberships seeded in {large.seeded.seconds:.0f}s",
            numbers={
                "p50_ms": large_ms,
                "small_p50_ms": small_ms,
                "users": large.seeded.users,
                "memberships": large.seeded.memberships,
                "seed_seconds": large.seeded.seconds,
            },
        )
    ]
