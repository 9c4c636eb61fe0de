"""Where mail goes: an SMTP server, the log (the zero-set-up default) or a hook of your own.

The mail itself is ``model/mail.py``'s ``OutgoingMail``; ``runtime/mail_sender.py`` hands
each due outbox row to one of these.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Protocol

import aiosmtplib

from watchword_server.config import Settings
from watchword_server.model.mail import OutgoingMail

__all__ = [
    "DEFAULT_SENDER",
    "HookTransport",
    "LogTransport",
    "MailTransport",
    "SmtpTransport",
    "load_hook",
    "transport_from_settings",
]

_log = logging.getLogger(__name__)
_mail_log = logging.getLogger("watchword.mail")


class MailTransport(Protocol):
    """Delivers one mail or raises."""

    async def send(self, mail: OutgoingMail) -> None:
        """Hand ``mail`` over for delivery; raise if it was not accepted."""
        ...


DEFAULT_SENDER = "watchword@localhost"
"""The From address when ``mail_sender`` is unset."""


class SmtpTransport:
    """Sends each mail as a plain-text UTF-8 message through an SMTP server.

    Args:
        host: The SMTP server.
        port: Its port.
        sender: The From address, e.g. ``"Watchword <noreply@example.com>"``.
        username: Log in with this user (and ``password``) when set.
        password: The SMTP password.
        starttls: Upgrade the connection with STARTTLS, and fail if the server cannot.
            When false the connection stays plain even if the server offers STARTTLS,
            so a relay with a self-signed certificate works as configured.
        ssl: Speak TLS from the start (SMTPS, usually port 465).
        ca_file: Trust the CAs in this PEM file (a private relay's) instead of the system's.
        timeout: Seconds allowed for connecting and for each SMTP command.
    """

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        sender: str = DEFAULT_SENDER,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if starttls and ssl:
            raise ValueError("starttls and ssl exclude each other")
        self.host = host
        self.port = port
        self.sender = sender
        self._username = username
        self._password = password
        self._starttls = starttls
        self._ssl = ssl
        self._ca_file = ca_file
        self._timeout = timeout
        # make_msgid() would otherwise look up this host's FQDN, a blocking DNS query.
        self._msgid_domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"

    def build(self, mail: OutgoingMail) -> EmailMessage:
        """The message that ``send`` delivers for ``mail``."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
        message["Date"] = formatdate(usegmt=True)
        if mail.message_id:
            message["Message-ID"] = f"<{mail.message_id}@{self._msgid_domain}>"
        else:
            message["Message-ID"] = make_msgid(domain=self._msgid_domain)
        message.set_content(mail.body, charset="utf-8")
        return message

    async def send(self, mail: OutgoingMail) -> None:
        """Deliver ``mail``; raises ``aiosmtplib.SMTPException`` or ``OSError`` on failure."""
        await aiosmtplib.send(
            self.build(mail),
            hostname=self.host,
            port=self.port,
            username=self._username,
            password=self._password,
            start_tls=self._starttls,
            use_tls=self._ssl,
            cert_bundle=self._ca_file,
            timeout=self._timeout,
        )


class LogTransport:
    """Writes each mail, body included, to the ``watchword.mail`` logger at INFO.

    The default when no SMTP server is configured, so a fresh install shows its
    verification links without any set-up. The body carries those links: do not use it
    where logs are less private than mailboxes.
    """

    async def send(self, mail: OutgoingMail) -> None:
        """Log ``mail``."""
        _mail_log.info("mail to %s\nSubject: %s\n\n%s", mail.recipient, mail.subject, mail.body)


class HookTransport:
    """Hands each mail to a callable; a sync one runs in a thread so it may block.

    Args:
        hook: Takes an ``OutgoingMail``; may be a plain function or a coroutine function.
    """

    def __init__(self, hook: Callable[[OutgoingMail], Any]) -> None:
        self.hook = hook

    async def send(self, mail: OutgoingMail) -> None:
        """Call the hook with ``mail``; its exception means the mail was not delivered."""
        if inspect.iscoroutinefunction(self.hook):
            await self.hook(mail)
            return
        result = await asyncio.to_thread(self.hook, mail)
        if inspect.isawaitable(result):
            # An async callable that does not look like one (an object with an async
            # __call__, a partial): calling it only made the coroutine; run it here.
            await result


def load_hook(path: str) -> MailTransport:
    """A transport that calls the function named ``"package.module:callable"``.

    Raises:
        ValueError: the path is malformed, or names nothing callable that can be imported.
    """
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise ValueError(f"mail hook {path!r} must look like 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"mail hook {path!r}: cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"mail hook {path!r}: {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise ValueError(f"mail hook {path!r} is not callable")
    return HookTransport(target)


def transport_from_settings(settings: Settings) -> MailTransport:
    """The transport the settings ask for: ``mail_hook``, else SMTP, else the log."""
    if settings.mail_hook:
        return load_hook(settings.mail_hook)
    if settings.smtp_host:
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            sender=settings.mail_sender or DEFAULT_SENDER,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            ssl=settings.smtp_ssl,
            ca_file=settings.smtp_ca_file,
        )
    _log.warning(
        "smtp_host is unset: mails are written to the log (logger 'watchword.mail'), "
        "not sent; set WATCHWORD_SMTP_HOST to send them"
    )
    return LogTransport()
