"""A rendered mail (what the flows build and the transports deliver), and what renders one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

__all__ = ["OutgoingMail", "Renderer"]


@dataclass(frozen=True)
class OutgoingMail:
    """A rendered mail, ready for a transport.

    Attributes:
        kind: What the mail is for, e.g. ``"verification"`` or ``"reset"``.
        recipient: The address it goes to.
        subject: The subject line.
        body: The plain-text body.
        context: The outbox row's values plus what rendering added (e.g. ``"link"``), for
            hooks that build their own message.
        message_id: Stable for the outbox row: a mail sent again (after a crash between
            the SMTP server's acceptance and the row's marking) carries the same
            ``Message-ID``, so receivers can drop the copy. Empty: a new one per send.
    """

    kind: str
    recipient: str
    subject: str
    body: str
    context: Mapping[str, str] = field(default_factory=dict)
    message_id: str = ""


Renderer: TypeAlias = Callable[[str, str, Mapping[str, str]], Awaitable[OutgoingMail]]
"""Turns an outbox row's ``(kind, recipient, context)`` into the mail to send."""
