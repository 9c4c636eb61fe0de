"""Clocks the tests move by hand, so expiry is tested without sleeping: the server's (a
``datetime``) and the Python client's guard cache's (seconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock", "ManualSeconds"]


class ManualClock:
    """Stands still until ``advance`` is called."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


class ManualSeconds:
    """Seconds that move only when told (set ``now``), for the client guard's cache."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
