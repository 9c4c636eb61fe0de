"""Throttling of password guessing, per address and per client address.

Failures are counted by a keyed digest of the lower-cased address, for unknown addresses
exactly as for known ones, so a refusal never tells whether an account exists. A correct
password clears its address's count; a client's count only ages out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta

from watchword_server.config import Settings
from watchword_server.domain.clock import Clock
from watchword_server.domain.errors import TooManyAttempts
from watchword_server.storage.db import Connection
from watchword_server.storage.repositories import login_failures as failure_rows

__all__ = ["LoginThrottle"]


class LoginThrottle:
    """Counts failed password checks and refuses further tries past the limits."""

    def __init__(self, settings: Settings, key: bytes, clock: Clock) -> None:
        self._per_email = settings.login_max_failures
        self._per_client = settings.login_max_failures_per_client
        self._window = timedelta(seconds=settings.login_failure_window)
        self._key = key
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return bool(self._per_email or self._per_client)

    def _email_key(self, email: str) -> bytes:
        return hmac.new(self._key, email.lower().encode(), hashlib.sha256).digest()

    def query(self, email: str, client_ip: str) -> failure_rows.RecentQuery | None:
        """What to count before checking a password for ``email`` from ``client_ip``; None
        when throttling is off. Read it with ``failure_rows.recent`` (or with the user, as a
        login does) and pass the result to ``refuse_if_over``."""
        if not self.enabled:
            return None
        return failure_rows.RecentQuery(
            email_key=self._email_key(email) if self._per_email else None,
            client_ip=client_ip if self._per_client else "",
            since=self._clock.now() - self._window,
        )

    def refuse_if_over(self, recent: failure_rows.Recent | None) -> None:
        """Raise TooManyAttempts (with ``retry_after`` seconds) when a limit is reached."""
        if recent is None:
            return
        now = self._clock.now()
        blocked_until: list[datetime] = []
        if self._per_email and recent.by_email >= self._per_email and recent.oldest_by_email:
            blocked_until.append(recent.oldest_by_email + self._window)
        if self._per_client and recent.by_client >= self._per_client and recent.oldest_by_client:
            blocked_until.append(recent.oldest_by_client + self._window)
        if blocked_until:
            wait = max(1, math.ceil((max(blocked_until) - now).total_seconds()))
            raise TooManyAttempts(metadata={"retry_after": str(wait)})

    async def check(self, conn: Connection, email: str, client_ip: str) -> None:
        """Raise TooManyAttempts (with ``retry_after`` seconds) when a limit is reached."""
        query = self.query(email, client_ip)
        if query is not None:
            self.refuse_if_over(await failure_rows.recent(conn, query))

    async def failed(self, conn: Connection, email: str, client_ip: str) -> None:
        """Count a failed password check."""
        if not self.enabled:
            return
        now = self._clock.now()
        await failure_rows.record(
            conn,
            email_key=self._email_key(email),
            client_ip=client_ip,
            now=now,
            since=now - self._window,
        )

    def to_forget(self, email: str, recent: failure_rows.Recent | None) -> bytes | None:
        """The address key whose failures a correct password clears, or None when there is
        nothing to clear (see ``succeeded``)."""
        if not self._per_email or (recent is not None and recent.by_email == 0):
            return None
        return self._email_key(email)

    async def succeeded(
        self, conn: Connection, email: str, recent: failure_rows.Recent | None = None
    ) -> None:
        """Clear the address's failures after a correct password.

        ``recent`` is what was read before the password check, if anything: when it counted
        no failure of the address, the delete (a round trip) is skipped. A failure recorded
        by a concurrent attempt since then is then left to count, which errs on the safe side.
        """
        if not self._per_email:
            return
        if recent is not None and recent.by_email == 0:
            return
        await failure_rows.forget(conn, email_key=self._email_key(email))
