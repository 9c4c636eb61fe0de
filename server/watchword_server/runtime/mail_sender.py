"""Sends the mail outbox in the background.

Flows add mail inside their own transaction (``domain/common/outbox.py``). ``MailSender``
delivers due rows with exponential backoff and marks each one sent. A row is claimed in a
short transaction of its own (on PostgreSQL with ``FOR UPDATE SKIP LOCKED``) that makes it
due again only after a lease, then sent
outside any transaction, then marked in another: so several server processes never send
the same mail, and no transaction stays open while SMTP answers (under SERIALIZABLE such a
transaction would lose to a concurrent claim after its mail was sent, and on a distributed
database a long transaction is the first thing to avoid). Delivery is at least once: if a
process dies after claiming a mail but before marking it, the mail goes out again once its
lease is over, with the same Message-ID.
The transports (SMTP, the log, a hook) are in ``runtime/mail_transports.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import timedelta

from watchword_server.domain.common.clock import Clock
from watchword_server.model.mail import Renderer
from watchword_server.runtime.mail_transports import MailTransport
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import outbox as outbox_rows

__all__ = ["MailSender"]

_log = logging.getLogger(__name__)


class MailSender:
    """Delivers due outbox rows, in a background task or one pass at a time.

    Args:
        database: The database database; each row gets its own short transaction.
        transport: Where mail goes.
        render: Builds each mail from its row when it is sent.
        clock: The domain's clock, for due times and backoff.
        batch_size: At most this many rows per pass.
        poll_interval: Seconds between passes when nobody calls ``wake()``; this is how
            mail enqueued by other server processes is picked up.
        max_backoff: The longest wait, in seconds, before a failed mail is tried again.
        base_backoff: The wait after the first failure; it doubles with each failure.
        max_attempts: After this many failures a mail is given up (kept, marked dead).
        claim_lease: Seconds a claimed mail is left to its sender before another may
            claim it; a send is cut off after 80% of it (counted as a failed attempt).
    """

    def __init__(
        self,
        database: Database,
        transport: MailTransport,
        render: Renderer,
        clock: Clock,
        *,
        batch_size: int = 20,
        poll_interval: float = 5.0,
        max_backoff: float = 600.0,
        base_backoff: float = 2.0,
        max_attempts: int = 12,
        claim_lease: float = 60.0,
    ) -> None:
        self._database = database
        self._transport = transport
        self._render = render
        self._clock = clock
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._base_backoff = base_backoff
        self._max_attempts = max_attempts
        self._claim_lease = timedelta(seconds=claim_lease)
        self._send_timeout = claim_lease * 0.8
        # One pass at a time in this process, whether from the loop or a direct call.
        self._pass_lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # wake() counts requests; a pass that found nothing due settles those made before
        # it began. idle() waits on that rather than on a flag, which a pass already under
        # way when the caller committed could set too early.
        self._requested = 0
        self._settled = 0
        self._progress = asyncio.Event()

    async def start(self) -> None:
        """Start the background task; its first pass runs at once (mail left by a restart)."""
        if self._task is not None:
            raise RuntimeError("the mail sender is already running")
        self._stopping = False
        self.wake()
        self._task = asyncio.create_task(self._run(), name="watchword-mail-sender")

    async def stop(self, grace: float = 15.0) -> None:
        """Stop the background task and wait for it.

        The mail being sent may finish within ``grace`` seconds, so one the SMTP server
        took is marked sent rather than sent again after a restart; then the task is
        cancelled. Either way no task is left pending.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(task, grace)
        except TimeoutError:
            _log.warning("the mail sender did not stop within %s s and was cancelled", grace)
        finally:
            self._stopping = False
            self._notify()

    def wake(self) -> None:
        """Ask for a pass now, e.g. right after a commit that enqueued mail."""
        self._requested += 1
        self._wakeup.set()

    async def idle(self) -> None:
        """Wait until a pass begun after the latest ``wake()`` has found nothing due.

        Raises:
            RuntimeError: the background task is not running (or stops meanwhile).
        """
        target = self._requested
        while self._settled < target:
            if self._task is None:
                raise RuntimeError("the mail sender is not running")
            await self._progress.wait()

    async def dead_letters(self) -> list[outbox_rows.DeadMail]:
        """The mails given up after ``max_attempts`` failures, oldest first."""
        async with self._database.connect() as conn:
            return await outbox_rows.dead_letters(conn)

    async def retry(self, mail_ids: list[int] | None = None) -> int:
        """Make given-up mails (``mail_ids``, or all) due again; returns how many."""

        async def revive(conn: Connection) -> int:
            return await outbox_rows.revive(conn, mail_ids, now=self._clock.now())

        revived = await self._database.transaction(revive)
        self.wake()
        return revived

    async def deliver_due(self) -> int:
        """Make one pass over due mail and return how many were sent.

        A failed mail is rescheduled with backoff and does not hold up the others.
        """
        sent, _ = await self._pass()
        return sent

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                # Failed rows are rescheduled into the future, so this ends.
                while not self._stopping and (await self._pass())[1]:
                    pass
            except Exception:
                # E.g. the database is briefly unreachable; the next poll tries again.
                _log.exception("mail delivery failed; retrying in %s s", self._poll_interval)

    async def _pass(self) -> tuple[int, int]:
        """One pass; returns (sent, attempted)."""
        began = self._requested
        sent = attempted = 0
        async with self._pass_lock:
            while attempted < self._batch_size and not self._stopping:
                outcome = await self._deliver_one()
                if outcome is None:
                    break
                attempted += 1
                if outcome:
                    sent += 1
        if attempted == 0 and not self._stopping:
            self._settled = max(self._settled, began)
            self._notify()
        return sent, attempted

    async def _deliver_one(self) -> bool | None:
        """Claim, send and settle the oldest due row: sent, failed, or None if none is due.

        Only the two transactions may be run again after a conflict, never the send."""
        claimed = await self._database.transaction(self._claim)
        if claimed is None:
            return None
        error = await self._attempt(claimed)
        dead = await self._database.transaction(lambda conn: self._settle(conn, claimed, error))
        if dead:
            _log.error(
                "mail %d (%s) to %s given up after %d attempts (last: %s); "
                "`watchword mail retry %d` sends it again",
                claimed.id,
                claimed.kind,
                claimed.recipient,
                claimed.attempts + 1,
                error,
                claimed.id,
            )
        return error is None

    async def _claim(self, conn: Connection) -> outbox_rows.PendingMail | None:
        now = self._clock.now()
        due = await outbox_rows.claim_due(
            conn, now=now, limit=1, lease_until=now + self._claim_lease
        )
        return due[0] if due else None

    async def _attempt(self, mail: outbox_rows.PendingMail) -> str | None:
        """Render and send; return the error text, or None when the mail was accepted."""
        try:
            # Done well within the lease, or another server could claim and send it too.
            async with asyncio.timeout(self._send_timeout):
                outgoing = await self._render(mail.kind, mail.recipient, mail.context)
                token = mail.context.get("message_id") or f"watchword-outbox-{mail.id}"
                await self._transport.send(dataclasses.replace(outgoing, message_id=token))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            # Never the body: it may carry a verification or reset link.
            _log.warning(
                "mail %d (%s) to %s failed on attempt %d: %s",
                mail.id,
                mail.kind,
                mail.recipient,
                mail.attempts + 1,
                error,
            )
            return error
        return None

    async def _settle(
        self, conn: Connection, mail: outbox_rows.PendingMail, error: str | None
    ) -> bool:
        """Mark the attempt's outcome (unless its claim was taken over); whether the mail
        is now given up."""
        now = self._clock.now()
        if error is None:
            await outbox_rows.mark_sent(conn, mail, now=now)
            return False
        # Capping the exponent keeps the float finite for rows that failed for a long time.
        delay = min(self._max_backoff, self._base_backoff * 2 ** min(mail.attempts, 64))
        dead = mail.attempts + 1 >= self._max_attempts
        recorded = await outbox_rows.record_failure(
            conn,
            mail,
            error=error,
            next_attempt_time=now + timedelta(seconds=delay),
            dead_time=now if dead else None,
        )
        return dead and recorded

    def _notify(self) -> None:
        # Wake every idle() waiter; each re-checks its own target on a fresh event.
        self._progress.set()
        self._progress = asyncio.Event()
