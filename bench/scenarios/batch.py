"""B5: one BatchCheck of 100 distinct checks against 100 single checks one after another.

Both sides run with one request in flight, so a request's latency is the wall time a
caller waits. 100 single checks made one after another take 100 single latencies; the
median latency stands for each of them (robust to a stray pause in either run).
"""

from __future__ import annotations

import statistics

from bench import calls
from bench.h2load import Load, Run
from bench.interleave import Triple, interleave, median_of
from bench.results import Figure, at_least
from bench.server import ServerProcess
from bench.stage import Driver, Stage, progress

__all__ = ["B5_METHOD", "b5"]

SINGLE_LOAD = Load(streams=1, connections=1)

B5_METHOD = (
    f"{calls.BATCH_SIZE} × p50(HasPermission) ÷ p50(BatchCheck of {calls.BATCH_SIZE} "
    "distinct HasPermission checks), both by h2load at 1 in flight (latency = a caller's "
    "wall time), warm caches; each batch run between two single runs; median over the rounds."
)


def _p50(run: Run) -> float:
    return run.p50


def b5(stage: Stage, server: ServerProcess) -> list[Figure]:
    """B5 on ``server`` (the everyday configuration, warm caches)."""
    options = stage.options
    everyday = stage.everyday
    user = everyday.seeded.checked_user_id
    single = calls.has_permission(server.target, everyday.access_key, user)
    batch = calls.batch_check(server.target, everyday.access_key, user)
    driver = Driver(server, options)
    progress(f"B5: {options.rounds} rounds of single checks and BatchCheck, 1 in flight")
    triples = interleave(
        lambda: driver.run(single, SINGLE_LOAD),
        {"batch": lambda: driver.run(batch, SINGLE_LOAD)},
        options.rounds,
        guard=stage.steal,
    )["batch"]

    def ratio(triple: Triple[Run, Run]) -> float:
        return calls.BATCH_SIZE * triple.reference(_p50) / triple.subject.p50

    single_ms = statistics.median(t.reference(_p50) for t in triples)
    batch_ms = statistics.median(t.subject.p50 for t in triples)
    return [
        Figure(
            "B5",
            f"{calls.BATCH_SIZE} single checks ÷ one BatchCheck, wall time",
            median_of(triples, ratio),
            target=at_least(10),
            detail=f"{calls.BATCH_SIZE} × {single_ms:.2f} ms vs {batch_ms:.2f} ms",
            numbers={"single_p50_ms": single_ms, "batch_p50_ms": batch_ms},
        )
    ]
