"""The server's TLS credentials, from the files the settings name, checked at start.

gRPC itself only finds out that a certificate or key is unusable when it binds the port
(and then says no more than "failed to bind"), or worse, at each handshake. So the files
are read and checked here first, with the standard library's OpenSSL, and a problem is
reported naming the setting and the file.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from watchword_server.config import Settings

__all__ = ["ServerCredentials", "TlsError", "server_credentials"]

# For the composition roots (app.py), which never import grpc themselves.
ServerCredentials = grpc.ServerCredentials


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


def server_credentials(settings: Settings) -> ServerCredentials | None:
    """The server's TLS credentials, or None when it serves plaintext (no TLS settings).

    With ``tls_client_ca_file``, clients must show a certificate issued by one of its CAs.

    Raises:
        TlsError: a file cannot be read, holds no certificate or key, or the key is not
            the certificate's.
    """
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    if cert_file is None or key_file is None:  # the settings allow both or neither
        return None
    chain = _read("tls_cert_file", cert_file)
    key = _read("tls_key_file", key_file)
    _check_certificates("tls_cert_file", cert_file)
    _check_key(cert_file, key_file)
    ca_file = settings.tls_client_ca_file
    if ca_file is None:
        return grpc.ssl_server_credentials([(key, chain)])
    client_cas = _read("tls_client_ca_file", ca_file)
    _check_certificates("tls_client_ca_file", ca_file)
    return grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_cas, require_client_auth=True
    )
