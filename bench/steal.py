"""CPU steal: the share of time the hypervisor ran someone else on this machine's cores.

On a shared virtual machine a neighbour can take a third of the cores for seconds at a
time (seen here: 30-40% steal for half a minute, then none). A run measured then is slower
for reasons that have nothing to do with Watchword, and interleaving (``interleave.py``)
does not cancel it when the neighbour comes and goes between the runs of one triple. So
every measured run's steal is read from ``/proc/stat``, and a triple that ran under too
much of it is measured again (a bounded number of times) instead of being counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["Sample", "StealGuard", "proc_stat_sample"]

T = TypeVar("T")

Sample = tuple[int, int]
"""Ticks stolen and ticks elapsed, summed over every core, since boot."""

_PROC_STAT = Path("/proc/stat")


def proc_stat_sample() -> Sample | None:
    """Stolen and total ticks from ``/proc/stat``'s ``cpu`` line; None where there is none."""
    try:
        with _PROC_STAT.open() as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    # already counted in user and nice, so the total stops at steal.
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:9]]
    return ticks[7], sum(ticks)


class StealGuard:
    """Times calls in stolen CPU and keeps the tally of what was accepted and redone.

    Args:
        limit: the largest share (0..1) of stolen time a counted triple may have run under.
        sample: where the tick counts come from (a seam for tests); returning None means
            the platform does not tell, and then nothing counts as stolen.
    """

    def __init__(
        self, limit: float, sample: Callable[[], Sample | None] = proc_stat_sample
    ) -> None:
        self.limit = limit
        self._sample = sample
        self.accepted: list[float] = []
        """The steal of every triple counted, in order."""
        self.redone = 0
        """Triples measured again because they ran under more steal than ``limit``."""
        self.over_limit = 0
        """Triples counted although over ``limit``: the retries were used up."""

    def timed(self, measure: Callable[[], T]) -> tuple[T, float]:
        """``measure()`` and the share of CPU time stolen while it ran."""
        start = self._sample()
        result = measure()
        end = self._sample()
        if start is None or end is None or end[1] <= start[1]:
            return result, 0.0
        return result, (end[0] - start[0]) / (end[1] - start[1])

    def summary(self) -> dict[str, float]:
        """What the report says about steal (shares as percentages)."""
        shares = self.accepted or [0.0]
        return {
            "limit_percent": round(self.limit * 100, 1),
            "triples": len(self.accepted),
            "redone": self.redone,
            "over_limit": self.over_limit,
            "median_percent": round(statistics.median(shares) * 100, 1),
            "max_percent": round(max(shares) * 100, 1),
        }
