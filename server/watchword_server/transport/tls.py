"""The server's TLS credentials, from the files the settings name, checked at start and
read again when they change.

gRPC itself only finds out that a certificate or key is unusable when it binds the port
(and then says no more than "failed to bind"), or worse, at each handshake. So the files
are read and checked here first, with the standard library's OpenSSL, and a problem is
reported naming the setting and the file.

A renewed certificate (cert-manager, certbot) replaces the files in place: gRPC asks for
the current configuration at each new handshake, and gets the files' new contents once
they have changed and passed the same checks. Files that fail them (a key written after
its certificate, say) are logged and the certificate in use stays, until they change
again. A certificate that expires within 30 days is warned of at start and at each reload.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import grpc
from cryptography import x509

from watchword_server.config import Settings

__all__ = ["ServerCredentials", "TlsError", "server_credentials"]

# For the composition roots (app.py), which never import grpc themselves.
ServerCredentials = grpc.ServerCredentials


_log = logging.getLogger(__name__)

# How often, at most, a handshake looks at the files again (a stat of each).
RELOAD_CHECK_SECONDS = 1.0
# A certificate this close to its end is warned of.
EXPIRY_WARNING = timedelta(days=30)


class TlsError(Exception):
    """A TLS file cannot be used; the message names the setting, the file and why."""


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise TlsError(f"{setting} {path}: cannot read it: {error.strerror}") from None


def _check_certificates(setting: str, path: str) -> None:
    # Loading the file as trusted CAs parses every PEM certificate in it, and fails on a
    # file that has none (a key, garbage, an empty file).
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise TlsError(f"{setting} {path}: holds no PEM certificate") from None


def _check_key(cert_file: str, key_file: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # A password callback that fails: an encrypted key must not make OpenSSL prompt.
        context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error):
            raise TlsError(
                f"tls_key_file {key_file}: is not the private key of the certificate in "
                f"tls_cert_file {cert_file}"
            ) from None
        raise TlsError(f"tls_key_file {key_file}: holds no unencrypted PEM private key") from None


def _no_passphrase() -> bytes:
    raise ssl.SSLError("the key is encrypted")


def _configuration(
    cert_file: str, key_file: str, ca_file: str | None
) -> tuple[grpc.ServerCertificateConfiguration, bytes]:
    """The certificate configuration the files hold now, and the certificate chain."""
    chain = _read("tls_cert_file", cert_file)
    key = _read("tls_key_file", key_file)
    _check_certificates("tls_cert_file", cert_file)
    _check_key(cert_file, key_file)
    client_cas = None
    if ca_file is not None:
        client_cas = _read("tls_client_ca_file", ca_file)
        _check_certificates("tls_client_ca_file", ca_file)
    configuration = grpc.ssl_server_certificate_configuration(
        [(key, chain)], root_certificates=client_cas
    )
    return configuration, chain


def warn_if_expiring(cert_file: str, chain: bytes, now: datetime | None = None) -> None:
    """Log a warning when the server's certificate (the chain's first) ends within
    ``EXPIRY_WARNING`` or has ended."""
    try:
        not_after = x509.load_pem_x509_certificates(chain)[0].not_valid_after_utc
    except ValueError:  # OpenSSL read it; a parser that cannot is no reason to stop
        return
    left = not_after - (now or datetime.now(UTC))
    if left <= timedelta(0):
        _log.error("tls_cert_file %s: the certificate expired on %s", cert_file, not_after)
    elif left <= EXPIRY_WARNING:
        _log.warning(
            "tls_cert_file %s: the certificate expires on %s, in %d days",
            cert_file,
            not_after,
            left.days,
        )


class _Reloader:
    """gRPC's certificate configuration fetcher: the files' contents once they changed."""

    def __init__(self, cert_file: str, key_file: str, ca_file: str | None) -> None:
        self._names = (cert_file, key_file, ca_file)
        self._files = [path for path in self._names if path is not None]
        self._stamps = self._stat()
        self._looked = time.monotonic()

    def _stat(self) -> list[tuple[int, int, int] | None]:
        stamps: list[tuple[int, int, int] | None] = []
        for path in self._files:
            try:
                found = os.stat(path)
            except OSError:
                stamps.append(None)
            else:
                stamps.append((found.st_mtime_ns, found.st_size, found.st_ino))
        return stamps

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC at each handshake, on one of its threads: it must never raise.
        try:
            return self._reload()
        except Exception:  # a bug here must not cost the handshake its old certificate
            _log.exception("reading the TLS files again failed; serving the certificate in use")
            return None

    def _reload(self) -> grpc.ServerCertificateConfiguration | None:
        now = time.monotonic()
        if now - self._looked < RELOAD_CHECK_SECONDS:
            return None
        self._looked = now
        stamps = self._stat()
        if stamps == self._stamps:
            return None
        self._stamps = stamps  # a failure is logged once, and tried again at the next change
        try:
            configuration, chain = _configuration(*self._names)
        except TlsError as error:
            _log.warning(
                "TLS files changed but cannot be used; serving the certificate in use: %s", error
            )
            return None
        _log.info("TLS files changed: new handshakes use the certificate in %s", self._files[0])
        warn_if_expiring(self._files[0], chain)
        return configuration


def server_credentials(settings: Settings) -> ServerCredentials | None:
    """The server's TLS credentials, or None when it serves plaintext (no TLS settings).
    They read the files again when they change (see the module's doc).

    With ``tls_client_ca_file``, clients must show a certificate issued by one of its CAs.

    Raises:
        TlsError: a file cannot be read, holds no certificate or key, or the key is not
            the certificate's.
    """
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    if cert_file is None or key_file is None:  # the settings allow both or neither
        return None
    ca_file = settings.tls_client_ca_file
    reloader = _Reloader(cert_file, key_file, ca_file)  # the files before the first read
    configuration, chain = _configuration(cert_file, key_file, ca_file)
    warn_if_expiring(cert_file, chain)
    # The stubs say the fetcher returns a configuration; gRPC takes None as "no change".
    fetcher = cast(Callable[[], grpc.ServerCertificateConfiguration], reloader)
    return grpc.dynamic_ssl_server_credentials(
        configuration, fetcher, require_client_authentication=ca_file is not None
    )
