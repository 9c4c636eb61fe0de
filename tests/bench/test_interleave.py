"""Side-by-side measurement: a triple measured under too much CPU steal is measured again,
a bounded number of times, and the StealGuard's tally says what happened.

The steal comes from a scripted tick source (the real one is /proc/stat, whose steal
nobody can order up); the measured calls are counters, so the order of runs is visible.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.interleave import interleave
from bench.steal import Sample, StealGuard, proc_stat_sample


def _ticks(steal_per_call: list[float]) -> Iterator[Sample | None]:
    """Samples before and after each call, each call stealing the next share (of 100)."""
    stolen, total = 0, 0
    for share in steal_per_call:
        yield stolen, total
        stolen += round(share * 100)
        total += 100
        yield stolen, total


def _guard(limit: float, steal_per_call: list[float]) -> StealGuard:
    samples = _ticks(steal_per_call)
    return StealGuard(limit, sample=lambda: next(samples))


class _Runs:
    def __init__(self) -> None:
        self.log: list[str] = []

    def run(self, name: str) -> int:
        self.log.append(name)
        return len(self.log)


def test_a_quiet_run_is_measured_once_per_round() -> None:
    runs = _Runs()
    guard = _guard(0.05, [0.0] * 5)

    triples = interleave(
        lambda: runs.run("R"), {"S": lambda: runs.run("S")}, rounds=2, guard=guard
    )["S"]

    assert runs.log == ["R", "S", "R", "S", "R"]
    assert [(t.before, t.subject, t.after) for t in triples] == [(1, 2, 3), (3, 4, 5)]
    assert guard.summary() == {
        "limit_percent": 5.0,
        "triples": 2,
        "redone": 0,
        "over_limit": 0,
        "median_percent": 0.0,
        "max_percent": 0.0,
    }


def test_a_triple_under_steal_is_measured_again_from_its_last_reference() -> None:
    runs = _Runs()
    # R S R (the subject's run lost 30%), then S R again, quiet.
    guard = _guard(0.05, [0.0, 0.3, 0.0, 0.0, 0.0])

    triples = interleave(
        lambda: runs.run("R"), {"S": lambda: runs.run("S")}, rounds=1, guard=guard
    )["S"]

    assert runs.log == ["R", "S", "R", "S", "R"]
    assert [(t.before, t.subject, t.after, t.steal) for t in triples] == [(3, 4, 5, 0.0)]
    assert (guard.redone, guard.over_limit, guard.accepted) == (1, 0, [0.0])


def test_retries_are_bounded_by_the_rounds_and_the_last_noisy_triple_counts() -> None:
    runs = _Runs()
    guard = _guard(0.05, [0.0] + [0.4] * 20)

    triples = interleave(
        lambda: runs.run("R"), {"S": lambda: runs.run("S")}, rounds=2, guard=guard
    )["S"]

    # Two rounds, two retries in all: four triples measured, two counted, both noisy.
    assert runs.log.count("S") == 4
    assert len(triples) == 2
    assert all(triple.steal == 0.4 for triple in triples)
    assert (guard.redone, guard.over_limit) == (2, 2)
    assert guard.summary()["max_percent"] == 40.0


def test_without_a_guard_nothing_is_measured_again() -> None:
    runs = _Runs()

    triples = interleave(lambda: runs.run("R"), {"S": lambda: runs.run("S")}, rounds=2)["S"]

    assert runs.log == ["R", "S", "R", "S", "R"]
    assert [triple.steal for triple in triples] == [0.0, 0.0]


def test_this_machine_reports_its_ticks() -> None:
    sample = proc_stat_sample()

    # Linux (where the benchmark runs) has /proc/stat; steal never exceeds the total.
    assert sample is not None
    stolen, total = sample
    assert 0 <= stolen <= total and total > 0
