"""Ratios measured side by side: each measurement between two of its reference.

This machine is noisy (the same Health/Check run varies by a third from one run to the
next), so a ratio of two figures taken minutes apart says little. Instead the reference
and the measured thing alternate, ``R S1 R S2 R … R``, each measurement is compared with
the mean of the reference runs just before and just after it, and the ratio reported is
the median of those per-triple ratios over several rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Triple", "interleave", "median_of"]

R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True)
class Triple(Generic[R, S]):
    """One measurement with the reference runs either side of it."""

    before: R
    subject: S
    after: R

    def reference(self, metric: Callable[[R], float]) -> float:
        """The mean of the two reference runs' ``metric``."""
        return (metric(self.before) + metric(self.after)) / 2


def interleave(
    reference: Callable[[], R], subjects: Mapping[str, Callable[[], S]], rounds: int
) -> dict[str, list[Triple[R, S]]]:
    """Run ``R S1 R S2 … R`` ``rounds`` times (adjacent rounds share their reference run).

    Returns, for each subject, its triples in the order they were measured.
    """
    if rounds < 1 or not subjects:
        raise ValueError("interleave needs at least one round and one subject")
    triples: dict[str, list[Triple[R, S]]] = {name: [] for name in subjects}
    before = reference()
    for _ in range(rounds):
        for name, measure in subjects.items():
            subject = measure()
            after = reference()
            triples[name].append(Triple(before, subject, after))
            before = after
    return triples


def median_of(triples: Sequence[Triple[R, S]], ratio: Callable[[Triple[R, S]], float]) -> float:
    """The median over ``triples`` of each one's ``ratio``."""
    return statistics.median(ratio(triple) for triple in triples)
