"""TLS and mutual TLS: a server with a certificate serves TLS clients only; with a client
CA it serves only clients showing a certificate from that CA; unusable TLS files stop it
at start with one line naming the setting and the file.

TLS is the transport's business, the same on either database: these tests run their
in-process servers on a copy of the migrated SQLite template only (the workers' test
needs PostgreSQL, as workers do). Certificates are made by each test (trustme).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.cli import complaint, watchword
from tests.support.clients import FLAVOURS, open_client
from tests.support.net import free_port
from tests.support.processes import serve_process, server_env
from tests.support.servers import settings_for
from tests.support.tls import Pki, channel, make_pki
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import auth_service_pb2_grpc
from watchword_server.app import StartupError, WatchwordServer
from watchword_server.transport.tls import RELOAD_CHECK_SECONDS

Serve = Callable[..., Awaitable[str]]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
async def serve(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Serve]:
    """A factory: ``await serve(setting=value…)`` starts a server; returns its address."""
    servers: list[WatchwordServer] = []

    async def start(**settings: Any) -> str:
        path = tmp_path / f"watchword-{len(servers)}.db"
        shutil.copyfile(sqlite_template, path)
        server = WatchwordServer(settings_for(f"sqlite+aiosqlite:///{path}", **settings))
        servers.append(server)
        return f"127.0.0.1:{await server.start()}"

    yield start
    for server in servers:
        await server.stop(0)


async def register(
    address: str, credentials: grpc.ChannelCredentials | None, email: str
) -> auth.RegisterResponse:
    """A real call (Register) over a channel of its own."""
    async with channel(address, credentials) as opened:
        stub = auth_service_pb2_grpc.AuthServiceStub(opened)
        reply: auth.RegisterResponse = await stub.Register(
            auth.RegisterRequest(
                email=email, password="correct horse battery", first_name="A", last_name="B"
            ),
            timeout=10,
        )
        return reply


async def refused(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    """The status of a Health check the server's handshake refused (it never answers)."""
    async with channel(address, credentials) as opened:
        stub: Any = health_pb2_grpc.HealthStub(opened)  # typed for sync channels only
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        return failure.value.code()


async def test_a_tls_server_serves_tls_clients_only(serve: Serve, pki: Pki) -> None:
    address = await serve(**pki.server_settings())

    reply = await register(address, pki.credentials(), "ada@example.com")
    assert reply.user.email == "ada@example.com" and reply.session_token
    # Only TLS: a plaintext client never gets an answer.
    assert await refused(address, None) == grpc.StatusCode.UNAVAILABLE
    # A client that does not trust the server's CA refuses the server.
    stranger = make_pki(pki.directory / "stranger")
    assert await refused(address, stranger.credentials()) == grpc.StatusCode.UNAVAILABLE


async def test_a_mutual_tls_server_serves_only_clients_with_a_certificate_of_its_ca(
    serve: Serve, pki: Pki
) -> None:
    address = await serve(**pki.server_settings(client_auth=True))
    billing = pki.client_cert("billing")
    stranger = make_pki(pki.directory / "stranger")
    forged = pki.client_cert("forged", issuer=stranger.ca)  # same name, another CA

    reply = await register(address, pki.credentials(billing), "ada@example.com")
    assert reply.user.email == "ada@example.com" and reply.session_token
    assert await refused(address, pki.credentials()) == grpc.StatusCode.UNAVAILABLE
    assert await refused(address, pki.credentials(forged)) == grpc.StatusCode.UNAVAILABLE
    assert await refused(address, None) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_python_clients_speak_mutual_tls(serve: Serve, pki: Pki, flavour: str) -> None:
    address = await serve(**pki.server_settings(client_auth=True))
    billing = pki.client_cert("billing")
    client = await open_client(flavour, address, credentials=pki.credentials(billing))
    try:
        await client.register(
            email="ada@example.com", password="correct horse battery", first_name="A", last_name="B"
        )
        login = await client.authenticate(email="ada@example.com", password="correct horse battery")
        assert login.user.email == "ada@example.com"
    finally:
        await client.close()


# What the server says at start about unusable files: (what to break, the complaint).
def _junk(pki: Pki, name: str) -> Path:
    path = pki.directory / name
    path.write_text("not PEM at all\n")
    return path


def _other_key(pki: Pki) -> Path:
    path = pki.directory / "other.key"
    pki.ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(path))
    return path


def _encrypted_key(pki: Pki) -> Path:
    key = serialization.load_pem_private_key(pki.key_file.read_bytes(), password=None)
    path = pki.directory / "encrypted.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    return path


BadFiles = Callable[[Pki], dict[str, str]]
_BAD_FILES: dict[str, tuple[BadFiles, str]] = {
    "junk certificate": (
        lambda pki: {"tls_cert_file": str(_junk(pki, "junk.pem"))},
        "tls_cert_file {tls_cert_file}: holds no PEM certificate",
    ),
    "a key for the certificate": (
        lambda pki: {"tls_cert_file": str(pki.key_file)},
        "tls_cert_file {tls_cert_file}: holds no PEM certificate",
    ),
    "junk key": (
        lambda pki: {"tls_key_file": str(_junk(pki, "junk.key"))},
        "tls_key_file {tls_key_file}: holds no unencrypted PEM private key",
    ),
    "encrypted key": (
        lambda pki: {"tls_key_file": str(_encrypted_key(pki))},
        "tls_key_file {tls_key_file}: holds no unencrypted PEM private key",
    ),
    "another certificate's key": (
        lambda pki: {"tls_key_file": str(_other_key(pki))},
        "tls_key_file {tls_key_file}: is not the private key of the certificate in "
        "tls_cert_file {tls_cert_file}",
    ),
    "junk client CA": (
        lambda pki: {"tls_client_ca_file": str(_junk(pki, "junk-ca.pem"))},
        "tls_client_ca_file {tls_client_ca_file}: holds no PEM certificate",
    ),
    "a directory for the client CA": (
        lambda pki: {"tls_client_ca_file": str(pki.directory)},
        "tls_client_ca_file {tls_client_ca_file}: cannot read it: Is a directory",
    ),
}


@pytest.mark.parametrize("case", list(_BAD_FILES))
async def test_unusable_tls_files_stop_the_server_naming_setting_and_file(
    serve: Serve, pki: Pki, case: str
) -> None:
    breaking, message = _BAD_FILES[case]
    settings = {**pki.server_settings(client_auth=True), **breaking(pki)}
    with pytest.raises(StartupError) as failure:
        await serve(**settings)
    assert str(failure.value) == message.format(**settings)


def _sqlite_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {
        "WATCHWORD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ww.db'}",
        "WATCHWORD_LISTEN": f"127.0.0.1:{free_port()}",
        **variables,
    }


def test_a_certificate_without_its_key_is_an_invalid_setting(tmp_path: Path, pki: Pki) -> None:
    result = watchword("serve", **_sqlite_env(tmp_path, WATCHWORD_TLS_CERT_FILE=str(pki.cert_file)))
    assert result.returncode == 2
    assert complaint(result) == (
        "watchword: invalid setting settings: Value error, tls_cert_file and tls_key_file go "
        "together: set both (TLS) or neither (plaintext)"
    )


def test_a_client_ca_without_a_certificate_is_an_invalid_setting(tmp_path: Path, pki: Pki) -> None:
    result = watchword(
        "serve", **_sqlite_env(tmp_path, WATCHWORD_TLS_CLIENT_CA_FILE=str(pki.ca_file))
    )
    assert result.returncode == 2
    assert complaint(result) == (
        "watchword: invalid setting settings: Value error, tls_client_ca_file (client "
        "certificates) needs TLS: set tls_cert_file and tls_key_file too"
    )


def test_a_missing_certificate_file_is_one_line(tmp_path: Path, pki: Pki) -> None:
    missing = tmp_path / "nowhere.pem"
    result = watchword(
        "serve",
        **_sqlite_env(
            tmp_path, WATCHWORD_TLS_CERT_FILE=str(missing), WATCHWORD_TLS_KEY_FILE=str(pki.key_file)
        ),
    )
    assert result.returncode == 1
    assert complaint(result) == (
        f"watchword: tls_cert_file {missing}: cannot read it: No such file or directory"
    )


def test_workers_are_not_started_on_unusable_tls_files(tmp_path: Path, pki: Pki) -> None:
    # Said once by the supervisor; no database is reached before it (none listens there).
    result = watchword(
        "serve",
        "--workers",
        "2",
        WATCHWORD_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none",
        WATCHWORD_LISTEN=f"127.0.0.1:{free_port()}",
        WATCHWORD_TLS_CERT_FILE=str(pki.cert_file),
        WATCHWORD_TLS_KEY_FILE=str(_junk(pki, "junk.key")),
    )
    assert result.returncode == 1
    assert complaint(result) == (
        f"watchword: tls_key_file {pki.directory / 'junk.key'}: holds no unencrypted PEM "
        "private key"
    )
    assert "starting 2 workers" not in result.stderr


@pytest.mark.postgres_only
async def test_workers_serve_mutual_tls_only(database_url: str, tmp_path: Path, pki: Pki) -> None:
    env = server_env(database_url, **pki.server_settings(client_auth=True))
    billing = pki.client_cert("billing")
    log = tmp_path / "workers.log"
    async with serve_process(env, log, workers=2, credentials=pki.credentials(billing)) as server:
        async with asyncio.timeout(30):  # both workers, not just the one health reached
            while log.read_text().count("watchword is serving on") < 2:
                await asyncio.sleep(0.05)
        assert log.read_text().count("mutual TLS: client certificates required") == 2

        reply = await register(server.address, pki.credentials(billing), "ada@example.com")
        assert reply.session_token
        assert await refused(server.address, pki.credentials()) == grpc.StatusCode.UNAVAILABLE
        assert await refused(server.address, None) == grpc.StatusCode.UNAVAILABLE


# --- certificates renewed in place ---------------------------------------------------


async def _handshake_code(address: str, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    """The outcome of a Health check over a connection of its own (a new handshake)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.secure_channel(address, credentials, options=options) as opened:
        stub: Any = health_pb2_grpc.HealthStub(opened)  # typed for sync channels only
        try:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK


async def _until(address: str, credentials: grpc.ChannelCredentials, code: grpc.StatusCode) -> None:
    # The files are looked at again at most once a RELOAD_CHECK_SECONDS.
    deadline = asyncio.get_running_loop().time() + 10 * RELOAD_CHECK_SECONDS + 5
    while (got := await _handshake_code(address, credentials)) != code:
        assert asyncio.get_running_loop().time() < deadline, f"still {got}, expected {code}"
        await asyncio.sleep(0.2)


def _renew(pki: Pki, new: Pki, *, key: bool = True) -> None:
    """Write ``new``'s certificate (and key) over ``pki``'s files, as a renewal does."""
    pki.cert_file.write_bytes(new.cert_file.read_bytes())
    if key:
        pki.key_file.write_bytes(new.key_file.read_bytes())


async def test_a_renewed_certificate_is_served_without_a_restart(
    serve: Serve, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watchword_server.transport.tls")
    address = await serve(**pki.server_settings())
    assert await _handshake_code(address, pki.credentials()) == grpc.StatusCode.OK
    renewed = make_pki(pki.directory / "renewed")  # another CA, so clients can tell
    _renew(pki, renewed)

    await _until(address, renewed.credentials(), grpc.StatusCode.OK)
    assert await _handshake_code(address, pki.credentials()) == grpc.StatusCode.UNAVAILABLE
    assert "TLS files changed: new handshakes use the certificate" in caplog.text
    reply = await register(address, renewed.credentials(), "ada@example.com")
    assert reply.user.email == "ada@example.com"


async def test_a_half_written_renewal_keeps_the_certificate_in_use(
    serve: Serve, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    address = await serve(**pki.server_settings())
    renewed = make_pki(pki.directory / "renewed")
    _renew(pki, renewed, key=False)  # the new certificate beside the old key

    await _until(address, pki.credentials(), grpc.StatusCode.OK)
    await asyncio.sleep(2 * RELOAD_CHECK_SECONDS)
    assert await _handshake_code(address, pki.credentials()) == grpc.StatusCode.OK
    assert "cannot be used; serving the certificate in use" in caplog.text
    assert "is not the private key of the certificate" in caplog.text

    pki.key_file.write_bytes(renewed.key_file.read_bytes())  # the renewal completes
    await _until(address, renewed.credentials(), grpc.StatusCode.OK)


async def test_a_certificate_about_to_expire_is_warned_of_at_start(
    serve: Serve, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    soon = datetime.now(UTC) + timedelta(days=5)
    leaf = pki.ca.issue_cert("127.0.0.1", "localhost", not_after=soon)
    leaf.private_key_pem.write_to_path(str(pki.key_file))
    pki.cert_file.write_bytes(leaf.cert_chain_pems[0].bytes())

    with caplog.at_level(logging.WARNING, logger="watchword_server.transport.tls"):
        address = await serve(**pki.server_settings())
    assert await _handshake_code(address, pki.credentials()) == grpc.StatusCode.OK
    warned = [r.getMessage() for r in caplog.records if "expires on" in r.getMessage()]
    assert warned and f"tls_cert_file {pki.cert_file}" in warned[0]
    assert "in 4 days" in warned[0] or "in 5 days" in warned[0]
