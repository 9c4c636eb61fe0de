"""The mail outbox, seen from the flows: a mail is written with the change that causes it.

``enqueue`` adds a row inside the caller's transaction, so a registration and its mail
commit or roll back together; ``runtime/mail_sender.py`` delivers it in the background.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import outbox as outbox_rows

__all__ = ["enqueue", "state"]


async def enqueue(
    conn: Connection,
    *,
    kind: str,
    recipient: str,
    context: Mapping[str, str],
    now: datetime,
) -> None:
    """Add a mail to the outbox inside the caller's transaction; it is due at once.

    Call ``MailSender.wake()`` after the transaction commits so it goes out without
    waiting for the next poll.

    Args:
        conn: The connection whose transaction also makes the change the mail is about.
        kind: What the mail is for; the renderer picks the template by it.
        recipient: The address to send to.
        context: Values to render with. Never a secret: it is stored in clear.
        now: The current time from the domain's clock.
    """
    # The Message-ID the mail keeps however often it is sent (see OutgoingMail).
    context = {**context, "message_id": uuid.uuid4().hex}
    await outbox_rows.insert_mail(conn, kind=kind, recipient=recipient, context=context, now=now)


async def state(database: Database) -> outbox_rows.OutboxState:
    """How the outbox stands (mails waiting, the oldest's age, mails given up)."""
    async with database.connect() as conn:
        return await outbox_rows.queue_state(conn)
