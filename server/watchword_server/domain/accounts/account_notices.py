"""Mails that tell an account's owner something and carry no key: today, that someone
tried to register with their address (``registration_enumeration_safe``)."""

from __future__ import annotations

from collections.abc import Mapping

from watchword_server.config import Messages
from watchword_server.model.mail import OutgoingMail, Renderer
from watchword_server.templates import render

__all__ = ["REGISTRATION_EXISTS", "renderer"]

REGISTRATION_EXISTS = "registration_exists"
"""The outbox kind of the mail to an address that someone tried to register again."""


def renderer(messages: Messages, keys: Renderer) -> Renderer:
    """The outbox's renderer: notices here, mails with keys by ``keys``."""

    async def render_mail(kind: str, recipient: str, context: Mapping[str, str]) -> OutgoingMail:
        if kind != REGISTRATION_EXISTS:
            return await keys(kind, recipient, context)
        subject, body = (
            messages.registration_exists_email_subject,
            messages.registration_exists_email_text,
        )
        return OutgoingMail(
            kind=kind,
            recipient=recipient,
            subject=render(subject, context),
            body=render(body, context),
            context=dict(context),
        )

    return render_mail
