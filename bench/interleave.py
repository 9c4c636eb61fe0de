"""Ratios measured side by side: each measurement between two of its reference.

This machine is noisy (the same Health/Check run varies by a third from one run to the
next), so a ratio of two figures taken minutes apart says little. Instead the reference
and the measured thing alternate, ``R S1 R S2 R … R``, each measurement is compared with
the mean of the reference runs just before and just after it, and the ratio reported is
the median of those per-triple ratios over several rounds.

Given a :class:`~bench.steal.StealGuard`, a triple that ran under more CPU steal than the
guard allows is measured again, up to ``rounds`` times per call in all (so a noisy minute
at most doubles the time), and its reference run still serves the next triple.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from bench.steal import StealGuard

__all__ = ["Triple", "interleave", "median_of"]

R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True)
class Triple(Generic[R, S]):
    """One measurement with the reference runs either side of it."""

    before: R
    subject: S
    after: R
    steal: float = 0.0
    """The largest share of CPU time stolen during any of the three runs."""

    def reference(self, metric: Callable[[R], float]) -> float:
        """The mean of the two reference runs' ``metric``."""
        return (metric(self.before) + metric(self.after)) / 2


def interleave(
    reference: Callable[[], R],
    subjects: Mapping[str, Callable[[], S]],
    rounds: int,
    *,
    guard: StealGuard | None = None,
) -> dict[str, list[Triple[R, S]]]:
    """Run ``R S1 R S2 … R`` ``rounds`` times (adjacent rounds share their reference run),
    measuring a triple again while it ran under more steal than ``guard`` allows.

    Returns, for each subject, its counted triples in the order they were measured.
    """
    if rounds < 1 or not subjects:
        raise ValueError("interleave needs at least one round and one subject")
    meter = guard or StealGuard(limit=1.0, sample=lambda: None)
    retries = rounds if guard is not None else 0
    triples: dict[str, list[Triple[R, S]]] = {name: [] for name in subjects}
    before, before_steal = meter.timed(reference)
    for _ in range(rounds):
        for name, measure in subjects.items():
            while True:
                subject, subject_steal = meter.timed(measure)
                after, after_steal = meter.timed(reference)
                triple = Triple(
                    before, subject, after, max(before_steal, subject_steal, after_steal)
                )
                before, before_steal = after, after_steal
                if triple.steal <= meter.limit:
                    break
                if retries == 0:
                    meter.over_limit += 1
                    break
                retries -= 1
                meter.redone += 1
            meter.accepted.append(triple.steal)
            triples[name].append(triple)
    return triples


def median_of(triples: Sequence[Triple[R, S]], ratio: Callable[[Triple[R, S]], float]) -> float:
    """The median over ``triples`` of each one's ``ratio``."""
    return statistics.median(ratio(triple) for triple in triples)
