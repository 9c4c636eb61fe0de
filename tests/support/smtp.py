"""A real SMTP server on loopback for tests, which can be stopped and started on one port.

aiosmtpd's ``Controller`` serves from its own event loop in a thread; received mail is
handed to the test's loop with ``call_soon_threadsafe``, so ``await server.wait_for(n)``
wakes on arrival instead of polling. Stopping the server and starting it again keeps the
port, so a client configured once sees "SMTP is down" and then "SMTP is back".

With ``tls_context`` the server offers STARTTLS (and with ``require_starttls`` refuses mail
until the client has upgraded, answering 530); with ``ssl_context`` it speaks TLS from the
first byte, as on port 465. Each ``ReceivedMail`` records the TLS version it came over.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["KEY_IN_LINK", "ReceivedMail", "SmtpServer", "key_of", "smtp_settings"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMail:
    """One accepted message: the SMTP envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    tls_version: str | None = None
    """The TLS version the message came over (e.g. ``"TLSv1.3"``), None when in clear."""

    @property
    def recipient(self) -> str:
        """The ``To`` header."""
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        """The decoded ``Subject`` header."""
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        """The decoded text body, with the line ends and trailing newline SMTP adds removed."""
        content = self.message.get_content()
        assert isinstance(content, str)
        return content.replace("\r\n", "\n").removesuffix("\n")


class _Handler:
    """aiosmtpd handler hooks; they run on the controller's thread."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_RCPT(  # the name aiosmtpd looks up
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self._server.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # the name aiosmtpd looks up
        self, smtp: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        # After STARTTLS smtp.transport is the TLS transport; with implicit TLS it always is.
        transport = smtp.transport
        ssl_object = None if transport is None else transport.get_extra_info("ssl_object")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._server._received(
            ReceivedMail(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=message,
                tls_version=ssl_object.version() if isinstance(ssl_object, ssl.SSLObject) else None,
            )
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on ``127.0.0.1:port`` that collects what it accepts.

    Args:
        reject: recipients refused with 550 at RCPT (the set may be changed while running).
        tls_context: A server-side context: offer STARTTLS with it.
        require_starttls: With ``tls_context``, answer 530 to every command but EHLO, HELO,
            NOOP, STARTTLS and QUIT until the client has upgraded, so no mail comes in clear.
        ssl_context: A server-side context: speak TLS from the first byte (SMTPS).

    Raises:
        ValueError: both contexts, or ``require_starttls`` without ``tls_context``.
    """

    def __init__(
        self,
        *,
        reject: set[str] | None = None,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if tls_context is not None and ssl_context is not None:
            raise ValueError(
                "tls_context (STARTTLS) and ssl_context (implicit TLS) exclude each other"
            )
        if require_starttls and tls_context is None:
            raise ValueError("require_starttls needs a tls_context")
        self.tls_context = tls_context
        self.require_starttls = require_starttls
        self.ssl_context = ssl_context
        self.port = _free_port()
        self.reject: set[str] = set(reject or ())
        self.messages: list[ReceivedMail] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        """Whether the server accepts connections."""
        return self._controller is not None

    def start(self) -> None:
        """Listen on ``port`` (the same one on every start)."""
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        # A fresh Controller each time: a stopped one has closed its event loop.
        controller = Controller(
            _Handler(self),
            hostname=HOST,
            port=self.port,
            ssl_context=self.ssl_context,
            tls_context=self.tls_context,
            require_starttls=self.require_starttls,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Close the listener; clients get "connection refused" until ``start()``."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages have arrived and return them all.

        Raises:
            TimeoutError: fewer than ``count`` arrived within ``timeout`` seconds.
        """
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with self._lock:
                        if len(self.messages) >= count:
                            return list(self.messages)
                        event.clear()
                    await event.wait()
        except TimeoutError:
            raise TimeoutError(
                f"expected {count} mails within {timeout} s, got {len(self.messages)}"
            ) from None
        finally:
            with self._lock:
                self._waiters.remove(waiter)

    def _received(self, mail: ReceivedMail) -> None:
        with self._lock:
            self.messages.append(mail)
            waiters = list(self._waiters)
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    async def __aenter__(self) -> SmtpServer:
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.stop()


def _free_port() -> int:
    # Controller needs a real port up front (it connects to it to check it is up), so
    # ask the kernel for one; asyncio sets SO_REUSEADDR, so it binds again after a stop.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def smtp_settings(smtp: SmtpServer) -> dict[str, Any]:
    """Settings that send mail to ``smtp``."""
    return {
        "smtp_host": HOST,
        "smtp_port": smtp.port,
        "mail_sender": "Watchword <watchword@example.com>",
    }


# The verification and reset links of the default templates, with the key they carry.
KEY_IN_LINK = re.compile(r"http://localhost:8000/(verify|reset)/([A-Za-z0-9_-]+)")


def key_of(mail: ReceivedMail) -> str:
    """The key in ``mail``'s verification or reset link."""
    match = KEY_IN_LINK.search(mail.body)
    assert match is not None, mail.body
    return match.group(2)
