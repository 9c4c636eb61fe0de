"""Time as the domain sees it: one injectable source, so tests can drive expiry."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime:
        """Return the current time."""
        ...


class SystemClock:
    """The real wall clock."""

    # datetime.now(UTC) as a C-level callable: a check through a session reads the clock
    # on every call, and a method of our own would add a Python frame each time.
    now = staticmethod(functools.partial(datetime.now, UTC))
    """Return the current UTC time."""
