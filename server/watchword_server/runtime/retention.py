"""The retention job: every ``retention_interval`` seconds, each server process deletes
what no process needs any more (see ``storage/repositories/retention.py``). Several
processes doing it at once only delete the same rows; a failed round is logged and the
next one tries again."""

from __future__ import annotations

import logging
from datetime import timedelta

from watchword_server.config import Settings
from watchword_server.domain.common.clock import Clock
from watchword_server.runtime.periodic import Periodic
from watchword_server.storage.db import Database
from watchword_server.storage.repositories import retention

__all__ = ["RetentionJob"]

_log = logging.getLogger(__name__)


class RetentionJob:
    """Purges in the background; ``purge`` does one round now."""

    def __init__(self, database: Database, settings: Settings, clock: Clock) -> None:
        self._engine = database.engine
        self._settings = settings
        self._clock = clock
        self._job = Periodic(self._round, settings.retention_interval, "watchword-retention")

    async def start(self) -> None:
        """Start the rounds (none when ``retention_interval`` is 0)."""
        if self._settings.retention_interval > 0:
            self._job.start()

    async def stop(self) -> None:
        """Stop the rounds: a batch under way finishes (within a few seconds; past that
        it is cancelled, which its atomic batches allow)."""
        await self._job.stop()

    async def purge(self) -> dict[str, int]:
        """One round; how many rows went, by kind."""
        settings, now = self._settings, self._clock.now()
        removed = {
            "sessions": await retention.purge_sessions(self._engine, now),
            "keys": await retention.purge_keys(
                self._engine, now - timedelta(seconds=settings.used_key_retention)
            ),
            "sent_mail": await retention.purge_sent_mail(
                self._engine, now - timedelta(seconds=settings.sent_mail_retention)
            ),
            "dead_mail": await retention.purge_dead_mail(
                self._engine, now - timedelta(seconds=settings.dead_mail_retention)
            ),
            "login_failures": await retention.purge_failures(
                self._engine, now - timedelta(seconds=settings.login_failure_window)
            ),
            "second_factor_challenges": await retention.purge_challenges(self._engine, now),
            "passkey_challenges": await retention.purge_passkey_challenges(self._engine, now),
        }
        if any(removed.values()):
            _log.info(
                "retention: removed %s",
                ", ".join(f"{count} {kind}" for kind, count in removed.items() if count),
            )
        return removed

    async def _round(self) -> None:
        try:
            await self.purge()
        except Exception as error:  # the database may be down: the next round retries
            _log.warning("retention round failed: %s", error)
