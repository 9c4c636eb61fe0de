"""Mail over TLS: the server's own SMTP transport against a TLS-capable aiosmtpd on loopback.

A throwaway CA and its server certificates are made here with the ``openssl`` command
(the ``cryptography`` package is not installed). The transport verifies against OpenSSL's
default trust store unless ``smtp_ca_file`` names a CA file; most tests trust the private
CA through ``SSL_CERT_FILE`` (which OpenSSL reads for the default store), one through
``smtp_ca_file``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.clock import ManualClock
from tests.support.flows import PASSWORD
from tests.support.servers import StartServer
from tests.support.smtp import ReceivedMail, SmtpServer, smtp_settings
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword_server.config import Settings
from watchword_server.domain.common.outbox import enqueue
from watchword_server.model.mail import OutgoingMail
from watchword_server.runtime.mail_sender import MailSender
from watchword_server.runtime.mail_transports import MailTransport, transport_from_settings
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.models import MailOutbox

SENDER = "Watchword <noreply@watchword.test>"
WAIT = 5.0
RESET_LINK = re.compile(r"/reset/([A-Za-z0-9_-]+)")

Mode = Literal["starttls", "implicit"]
MODES: tuple[Mode, ...] = ("starttls", "implicit")

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"""


@dataclass(frozen=True)
class Pki:
    """A private CA (``ca_file``) and two certificates it signed, with their keys."""

    ca_file: Path
    loopback: tuple[Path, Path]
    """For ``IP:127.0.0.1`` and ``DNS:localhost``: what the transport connects to."""
    other_host: tuple[Path, Path]
    """For ``DNS:mail.example.test`` only: right CA, wrong name."""

    def server_context(self, pair: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """A server-side context presenting ``pair`` (the loopback certificate by default)."""
        certificate, key = pair or self.loopback
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        return context


def _openssl(openssl: str, *args: str | Path) -> None:
    # Without OPENSSL_CONF: only the configuration written here shapes the certificates.
    env = {name: value for name, value in os.environ.items() if name != "OPENSSL_CONF"}
    subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=30, env=env)


def _make_pki(directory: Path) -> Pki:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a throwaway CA")
    key_options = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    ca_config = directory / "ca.cnf"
    ca_config.write_text(_OPENSSL_CONFIG.format(san="DNS:unused.invalid"))
    ca_file, ca_key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        openssl, "req", "-x509", "-config", ca_config, "-extensions", "ca", *key_options,
        "-keyout", ca_key, "-out", ca_file, "-days", "2", "-subj", "/CN=Watchword test CA",
    )  # fmt: skip

    def issue(name: str, san: str) -> tuple[Path, Path]:
        config, csr = directory / f"{name}.cnf", directory / f"{name}.csr"
        certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
        config.write_text(_OPENSSL_CONFIG.format(san=san))
        _openssl(
            openssl, "req", "-new", "-config", config, *key_options,
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        )  # fmt: skip
        _openssl(
            openssl, "x509", "-req", "-in", csr, "-CA", ca_file, "-CAkey", ca_key,
            "-set_serial", f"0x{secrets.token_hex(16)}", "-days", "2",
            "-extfile", config, "-extensions", "server", "-out", certificate,
        )  # fmt: skip
        return certificate, key

    return Pki(
        ca_file=ca_file,
        loopback=issue("loopback", "IP:127.0.0.1, DNS:localhost"),
        other_host=issue("other", "DNS:mail.example.test"),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(autouse=True)
def _system_trust_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from OpenSSL's default store, which cannot know this run's CA."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


def trust(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    """Trust the private CA: OpenSSL reads SSL_CERT_FILE each time a context is made."""
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))


def tls_server(pki: Pki, mode: Mode, pair: tuple[Path, Path] | None = None) -> SmtpServer:
    context = pki.server_context(pair)
    if mode == "starttls":
        return SmtpServer(tls_context=context, require_starttls=True)
    return SmtpServer(ssl_context=context)


def tls_settings(mode: Mode) -> dict[str, bool]:
    return {"smtp_starttls": True} if mode == "starttls" else {"smtp_ssl": True}


def transport_for(server: SmtpServer, **settings: Any) -> MailTransport:
    """The transport the server would build from these settings."""
    return transport_from_settings(
        Settings(smtp_host="127.0.0.1", smtp_port=server.port, mail_sender=SENDER, **settings)
    )


async def render(kind: str, recipient: str, context: Mapping[str, str]) -> OutgoingMail:
    return OutgoingMail(
        kind=kind,
        recipient=recipient,
        subject="Bestätigung für Łukasz",
        body="Öffne https://example.test/verify/abc ✓",
        context=context,
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def add_mail(engine: AsyncEngine, clock: ManualClock, recipient: str) -> None:
    async with engine.begin() as conn:
        await enqueue(conn, kind="verification", recipient=recipient, context={}, now=clock.now())


async def outbox(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(MailOutbox).order_by(MailOutbox.id))).all())


def assert_intact(mail: ReceivedMail, recipient: str) -> None:
    assert mail.rcpt_tos == (recipient,)
    assert mail.recipient == recipient
    assert mail.mail_from == "noreply@watchword.test"
    assert mail.subject == "Bestätigung für Łukasz"
    assert mail.body == "Öffne https://example.test/verify/abc ✓"
    assert mail.tls_version in {"TLSv1.2", "TLSv1.3"}


@pytest.mark.parametrize("mode", MODES)
async def test_transport_delivers_over_tls_to_a_trusted_server(
    mode: Mode, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust(monkeypatch, pki)
    async with tls_server(pki, mode) as server:
        transport = transport_for(server, **tls_settings(mode))
        await transport.send(await render("verification", "ada@example.com", {}))
        [mail] = await server.wait_for(1, timeout=WAIT)
    assert_intact(mail, "ada@example.com")


@pytest.mark.parametrize("mode", MODES)
async def test_password_reset_mail_arrives_over_tls(
    mode: Mode, pki: Pki, monkeypatch: pytest.MonkeyPatch, start_server: StartServer
) -> None:
    trust(monkeypatch, pki)
    async with tls_server(pki, mode) as server:
        running = await start_server(**smtp_settings(server), **tls_settings(mode))
        await running.auth.Register(
            auth.RegisterRequest(
                email="ada@example.com", password=PASSWORD, first_name="Ada", last_name="L"
            )
        )
        await running.auth.RequestPasswordReset(
            auth.RequestPasswordResetRequest(email="ada@example.com")
        )
        [mail] = await server.wait_for(1, timeout=WAIT)
        # Let the sender finish (QUIT, mark the row sent) before the SMTP server stops.
        sender, domain = running.server.mail_sender, running.server.domain
        assert sender is not None and domain is not None
        await domain.background.idle()
        sender.wake()
        await sender.idle()
    assert (mail.recipient, mail.subject) == ("ada@example.com", "Password reset requested")
    assert mail.tls_version in {"TLSv1.2", "TLSv1.3"}
    match = RESET_LINK.search(mail.body)
    assert match is not None, mail.body
    await running.auth.ResetPassword(
        auth.ResetPasswordRequest(reset_key=match.group(1), new_password="a whole new secret")
    )
    login = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password="a whole new secret")
    )
    assert login.session_token


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("certificate", "trusted", "error"),
    [
        ("loopback", False, "certificate verify failed: unable to get local issuer"),
        ("other_host", True, "certificate verify failed: IP address mismatch"),
    ],
    ids=["unknown-ca", "wrong-name"],
)
async def test_a_certificate_the_client_cannot_verify_gets_no_mail_and_loses_none(
    mode: Mode,
    certificate: Literal["loopback", "other_host"],
    trusted: bool,
    error: str,
    pki: Pki,
    monkeypatch: pytest.MonkeyPatch,
    engine: AsyncEngine,
    clock: ManualClock,
) -> None:
    if trusted:
        trust(monkeypatch, pki)
    await add_mail(engine, clock, "ada@example.com")
    async with tls_server(pki, mode, getattr(pki, certificate)) as server:
        transport = transport_for(server, **tls_settings(mode))
        sender = MailSender(Database(engine), transport, render, clock)
        assert await sender.deliver_due() == 0
        [row] = await outbox(engine)
        assert (row.sent_time, row.attempts) == (None, 1)
        assert error in row.last_error
        assert server.messages == []

    # Once the client can verify the server (the CA trusted, the right certificate), the
    # same row goes out on its next attempt, over TLS.
    trust(monkeypatch, pki)
    clock.advance(2)
    async with tls_server(pki, mode) as fixed:
        sender = MailSender(
            Database(engine), transport_for(fixed, **tls_settings(mode)), render, clock
        )
        assert await sender.deliver_due() == 1
        [mail] = await fixed.wait_for(1, timeout=WAIT)
    assert_intact(mail, "ada@example.com")
    [row] = await outbox(engine)
    assert row.sent_time == clock.now()


async def test_a_client_without_tls_never_hands_a_starttls_only_server_the_mail(
    pki: Pki, monkeypatch: pytest.MonkeyPatch, engine: AsyncEngine, clock: ManualClock
) -> None:
    trust(monkeypatch, pki)
    await add_mail(engine, clock, "ada@example.com")
    async with tls_server(pki, "starttls") as server:
        sender = MailSender(Database(engine), transport_for(server), render, clock)
        assert await sender.deliver_due() == 0
        [row] = await outbox(engine)
        assert (row.sent_time, row.attempts) == (None, 1)
        assert "530" in row.last_error and "STARTTLS" in row.last_error
        assert server.messages == []

        clock.advance(2)
        transport = transport_for(server, smtp_starttls=True)
        assert await MailSender(Database(engine), transport, render, clock).deliver_due() == 1
        [mail] = await server.wait_for(1, timeout=WAIT)
    assert_intact(mail, "ada@example.com")


@pytest.mark.parametrize(
    ("mode", "error"),
    [("starttls", "STARTTLS extension not supported"), ("implicit", "SSL")],
)
async def test_a_client_that_asks_for_tls_never_falls_back_to_clear(
    mode: Mode, error: str, engine: AsyncEngine, clock: ManualClock
) -> None:
    """A server (or a man in the middle) that offers no TLS gets nothing: no downgrade."""
    await add_mail(engine, clock, "ada@example.com")
    async with SmtpServer() as plain:
        sender = MailSender(
            Database(engine), transport_for(plain, **tls_settings(mode)), render, clock
        )
        assert await sender.deliver_due() == 0
        [row] = await outbox(engine)
        assert (row.sent_time, row.attempts) == (None, 1)
        assert error in row.last_error
        assert plain.messages == []


@pytest.mark.parametrize("mode", MODES)
async def test_smtp_ca_file_trusts_a_private_relay_for_this_server_alone(
    mode: Mode, pki: Pki
) -> None:
    async with tls_server(pki, mode) as server:
        transport = transport_for(server, smtp_ca_file=str(pki.ca_file), **tls_settings(mode))
        await transport.send(await render("verification", "ada@example.com", {}))
        [mail] = await server.wait_for(1, timeout=WAIT)
    assert_intact(mail, "ada@example.com")
