"""Service keys bound to a client certificate subject (`keys create --client-subject`): on a
mutual-TLS server such a key is accepted only on calls whose verified client certificate has
that subject, whether the key is cached or not, and never over a connection without one.

Like tests/e2e/test_tls.py, most run on a copy of the migrated SQLite template only: the
binding is checked in the transport, the same on either database; the main case runs on
both, as keys are read differently (a prepared statement on PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.servers import TEST_PEPPER, StartServer, settings_for
from tests.support.tls import ClientCert, Pki, channel, make_pki
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import access_service_pb2_grpc, admin_service_pb2_grpc
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword_server.app import WatchwordServer
from watchword_server.config import Messages
from watchword_server.domain.access.service_keys import Scope, ServiceKeys
from watchword_server.model.errors import InvalidArgument

_MISMATCH = Messages().service_key_subject_mismatch
# A well-formed user id no user has: a call whose key passes is answered NOT_FOUND.
_NO_USER = "00000000-0000-4000-8000-000000000000"


@dataclass
class Served:
    address: str
    keys: ServiceKeys


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "watchword.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def serve(database: str) -> AsyncIterator[Serve]:
    """A factory: ``await serve(setting=value…)`` starts a server on the test's database."""
    servers: list[WatchwordServer] = []

    async def start(**settings: Any) -> Served:
        server = WatchwordServer(settings_for(database, **settings))
        servers.append(server)
        port = await server.start()
        assert server.service_keys is not None
        return Served(f"127.0.0.1:{port}", server.service_keys)

    yield start
    for server in servers:
        await server.stop(0)


async def check(
    address: str, pki: Pki | None, client: ClientCert | None, key: str
) -> access.HasMembershipResponse | grpc.aio.AioRpcError:
    """One AccessService call with ``key``, from ``client`` (plaintext without ``pki``): its
    answer, or the error it ended with."""
    credentials = None if pki is None else pki.credentials(client)
    async with channel(address, credentials) as opened:
        stub = access_service_pb2_grpc.AccessServiceStub(opened)
        try:
            reply: access.HasMembershipResponse = await stub.HasMembership(
                access.HasMembershipRequest(group="editors", user_id=str(_NO_USER)),
                metadata=(("authorization", f"Bearer {key}"),),
                timeout=10,
            )
        except grpc.aio.AioRpcError as error:
            return error
        return reply


def accepted(outcome: access.HasMembershipResponse | grpc.aio.AioRpcError) -> bool:
    # The key passed: the check itself answered, that no such user exists.
    return (
        isinstance(outcome, grpc.aio.AioRpcError)
        and outcome.code() is grpc.StatusCode.NOT_FOUND
        and outcome.details() == Messages().user_not_found
    )


def refused_as_bound(outcome: access.HasMembershipResponse | grpc.aio.AioRpcError) -> bool:
    return (
        isinstance(outcome, grpc.aio.AioRpcError)
        and outcome.code() is grpc.StatusCode.UNAUTHENTICATED
        and outcome.details() == _MISMATCH
    )


async def test_a_bound_key_is_accepted_only_from_its_certificate_cached_or_not(
    start_server: StartServer, pki: Pki
) -> None:
    # On both databases (the harness's server): PostgreSQL reads keys by a prepared statement.
    running = await start_server(**pki.server_settings(client_auth=True))
    assert running.server.service_keys is not None
    served = Served(running.address, running.server.service_keys)
    billing = pki.client_cert("billing, inc")  # a subject with an escaped comma
    intruder = pki.client_cert("intruder")  # from the same CA: TLS lets it in
    bound = await served.keys.create("billing", Scope.ACCESS, client_subject=billing.subject)
    unbound = await served.keys.create("anyone", Scope.ACCESS)

    # Twice each: the second call finds the key in the cache (the key gate's fast path).
    for _ in range(2):
        assert accepted(await check(served.address, pki, billing, bound))
    for _ in range(2):
        assert refused_as_bound(await check(served.address, pki, intruder, bound))
    assert accepted(await check(served.address, pki, intruder, unbound))

    # Refused on its first use too, before anything cached it.
    fresh = await served.keys.create("billing-2", Scope.ACCESS, client_subject=billing.subject)
    assert refused_as_bound(await check(served.address, pki, intruder, fresh))
    assert accepted(await check(served.address, pki, billing, fresh))


async def test_a_bound_key_needs_a_verified_client_certificate(serve: Serve, pki: Pki) -> None:
    billing = pki.client_cert("billing")
    tls_only = await serve(**pki.server_settings())  # no client CA: no certificate asked
    key = await tls_only.keys.create("billing", Scope.ACCESS, client_subject=billing.subject)
    assert refused_as_bound(await check(tls_only.address, pki, billing, key))
    plaintext = await serve()  # the same database: the same key
    assert refused_as_bound(await check(plaintext.address, None, None, key))
    unbound = await plaintext.keys.create("anyone", Scope.ACCESS)
    assert accepted(await check(plaintext.address, None, None, unbound))


async def test_a_stream_with_a_bound_key_from_another_certificate_is_refused(
    serve: Serve, pki: Pki
) -> None:
    served = await serve(**pki.server_settings(client_auth=True))
    billing, intruder = pki.client_cert("billing"), pki.client_cert("intruder")
    key = await served.keys.create("watcher", Scope.ADMIN, client_subject=billing.subject)
    async with channel(served.address, pki.credentials(intruder)) as opened:
        stub = admin_service_pb2_grpc.AdminServiceStub(opened)
        stream = stub.WatchEvents(
            admin.WatchEventsRequest(), metadata=(("authorization", f"Bearer {key}"),)
        )
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stream.read()
    assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert failure.value.details() == _MISMATCH


@pytest.mark.parametrize("subject", ["", " CN=billing", "billing", "CN=a\nO=b", "CN=" + "x" * 1024])
async def test_a_malformed_subject_is_refused_when_the_key_is_made(
    serve: Serve, subject: str
) -> None:
    served = await serve()
    with pytest.raises(InvalidArgument) as failure:
        await served.keys.create("k", Scope.ACCESS, client_subject=subject)
    assert [violation.field for violation in failure.value.violations] == ["client_subject"]


def _cli(database: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env.update(WATCHWORD_DATABASE_URL=database, WATCHWORD_HMAC_KEY=TEST_PEPPER)
    return subprocess.run(
        [sys.executable, "-m", "watchword_server", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_keys_create_client_subject_from_the_command_line(
    serve: Serve, database: str, pki: Pki
) -> None:
    billing, intruder = pki.client_cert("billing"), pki.client_cert("intruder")
    created = _cli(
        database,
        "keys",
        "create",
        "billing",
        "--scope",
        "access",
        "--client-subject",
        billing.subject,
    )
    assert created.returncode == 0, created.stderr
    assert f"for client certificate {billing.subject!r}" in created.stdout
    key = created.stdout.strip().splitlines()[-1]
    listed = _cli(database, "keys", "list")
    assert "billing\taccess\t" in listed.stdout
    assert listed.stdout.rstrip("\n").endswith(f"\tclient {billing.subject}")
    bad = _cli(database, "keys", "create", "bad", "--scope", "access", "--client-subject", "CN")
    assert bad.returncode == 1
    assert "client_subject" in bad.stderr and "Traceback" not in bad.stderr

    served = await serve(**pki.server_settings(client_auth=True))
    assert accepted(await check(served.address, pki, billing, key))
    assert refused_as_bound(await check(served.address, pki, intruder, key))
