"""Certificates for TLS tests, made by the test with trustme: a CA, the server's
certificate from it, client certificates, and the PEM files the settings name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
import trustme
from cryptography import x509

__all__ = ["ClientCert", "Pki", "channel", "make_pki"]


@dataclass(frozen=True)
class ClientCert:
    """A client's certificate and key, as PEM bytes and as files."""

    cert: bytes
    key: bytes
    cert_file: Path
    key_file: Path

    @property
    def subject(self) -> str:
        """The certificate's subject as RFC 4514 writes it (``openssl x509 -subject
        -nameopt RFC2253`` too), e.g. ``CN=billing,OU=…,O=…``."""
        return x509.load_pem_x509_certificate(self.cert).subject.rfc4514_string()


@dataclass(frozen=True)
class Pki:
    """A CA of the test's own and a server certificate for 127.0.0.1 and localhost."""

    ca: trustme.CA
    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def server_settings(self, *, client_auth: bool = False) -> dict[str, str]:
        """The TLS settings of a server with this certificate (and this CA for clients)."""
        settings = {"tls_cert_file": str(self.cert_file), "tls_key_file": str(self.key_file)}
        if client_auth:
            settings["tls_client_ca_file"] = str(self.ca_file)
        return settings

    def client_cert(self, name: str, *, issuer: trustme.CA | None = None) -> ClientCert:
        """A client certificate with common name ``name``, from this CA unless ``issuer``."""
        leaf = (issuer or self.ca).issue_cert("client@clients.example.com", common_name=name)
        stem = "".join(char if char.isalnum() else "-" for char in name)
        cert_file, key_file = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert_file))
        leaf.private_key_pem.write_to_path(str(key_file))
        return ClientCert(
            leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(), cert_file, key_file
        )

    def credentials(self, client: ClientCert | None = None) -> grpc.ChannelCredentials:
        """A client's channel credentials: trusting this CA, showing ``client`` if given."""
        if client is None:
            return grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=client.key, certificate_chain=client.cert
        )


def channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    """A channel to ``address``: TLS with ``credentials``, plaintext without."""
    if credentials is None:
        return grpc.aio.insecure_channel(address)
    return grpc.aio.secure_channel(address, credentials)


def make_pki(directory: Path) -> Pki:
    """A new CA and server certificate, written to files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
    )
    ca.cert_pem.write_to_path(str(ca_file))
    server.private_key_pem.write_to_path(str(key_file))
    # The whole chain, as a server sends it (here just the leaf: the CA signs it directly).
    cert_file.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    return Pki(ca, directory, ca_file, cert_file, key_file)
