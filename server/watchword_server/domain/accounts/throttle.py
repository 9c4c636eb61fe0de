"""Throttling of password guessing, per address and per client address.

Failures are counted by a keyed digest of the address's key (``model/email_addresses.py``),
for unknown addresses exactly as for known ones, so a refusal never tells whether an account
exists. A correct password clears its address's count; a client's count only ages out.

A check takes its place among the failures before it is made (``query`` names it; the
storage reserves it atomically), so a burst of parallel guesses gets exactly as many
checks as the limit allows. A check that succeeds gives its place back.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from datetime import datetime, timedelta

from watchword_server.config import Settings
from watchword_server.domain.common.clock import Clock
from watchword_server.model.email_addresses import email_key
from watchword_server.model.errors import TooManyAttempts
from watchword_server.storage.db import Connection
from watchword_server.storage.logins import Attempt
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
        return hmac.new(self._key, email_key(email).encode(), hashlib.sha256).digest()

    def query(self, email: str, client_ip: str) -> failure_rows.RecentQuery | None:
        """The failures that may throttle a password check for ``email`` from
        ``client_ip``, and the check's place to reserve among them; None when throttling is
        off. Pass the reservation (``Logins.read`` or ``Logins.reserve``) to
        ``refuse_unless_reserved``."""
        if not self.enabled:
            return None
        now = self._clock.now()
        email_key = self._email_key(email)
        # No address (a passkey login with nothing but a credential unknown here): only
        # the client's count applies; the failure is stored under the key of "", which no
        # address's count reads.
        per_email = self._per_email if email else 0
        return failure_rows.RecentQuery(
            email_key=email_key if per_email else None,
            client_ip=client_ip if self._per_client else "",
            since=now - self._window,
            attempt=failure_rows.NewAttempt(
                email_key=email_key,
                client_ip=client_ip,
                now=now,
                email_limit=per_email,
                client_limit=self._per_client,
            ),
        )

    def refuse_unless_reserved(self, attempt: Attempt | None) -> None:
        """Raise TooManyAttempts (with ``retry_after`` seconds) when the attempt got no
        place: a limit was reached."""
        if attempt is None or attempt.reserved is not None:
            return
        now = self._clock.now()
        recent = attempt.recent
        blocked_until: list[datetime] = []
        if self._per_email and recent.by_email >= self._per_email and recent.oldest_by_email:
            blocked_until.append(recent.oldest_by_email + self._window)
        if self._per_client and recent.by_client >= self._per_client and recent.oldest_by_client:
            blocked_until.append(recent.oldest_by_client + self._window)
        until = max(blocked_until, default=now)
        wait = max(1, math.ceil((until - now).total_seconds()))
        raise TooManyAttempts(metadata={"retry_after": str(wait)})

    async def failed(
        self, conn: Connection, email: str, client_ip: str, attempt: Attempt | None
    ) -> None:
        """A check failed: its reserved place becomes its failure (durably, with the
        caller's transaction); failures of this address and client too old to count are
        dropped."""
        if not self.enabled:
            return
        now = self._clock.now()
        if attempt is not None and attempt.reserved is not None:
            await failure_rows.confirm(conn, attempt.reserved, now)
        await failure_rows.prune(
            conn, email_key=self._email_key(email), client_ip=client_ip, since=now - self._window
        )

    def to_forget(self, email: str, attempt: Attempt | None) -> bytes | None:
        """The address key whose failures a correct password clears, or None when there is
        nothing to clear beyond the attempt's own place (the write gives that back)."""
        if (
            not email
            or not self._per_email
            or (attempt is not None and attempt.recent.by_email == 0)
        ):
            return None
        return self._email_key(email)
