"""The server process: health, reflection, schema checks, the embedded default and the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from tests.support.clock import ManualClock
from tests.support.net import free_port
from tests.support.postgres import postgres_database
from tests.support.servers import TEST_PEPPER, Running, settings_for
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import auth_service_pb2_grpc
from watchword_server.app import SchemaNotReady, WatchwordServer
from watchword_server.config import Settings

REPO = Path(__file__).resolve().parents[2]


async def test_health_says_serving(watchword: Running) -> None:
    # The typeshed stubs for health/reflection model only the sync channel.
    stub: Any = health_pb2_grpc.HealthStub(watchword.channel)
    for service in ("", "watchword.auth.v1.AuthService", "watchword.auth.v1.AdminService"):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",  # grpcurl, Postman
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


async def _reflect(
    channel: grpc.aio.Channel, method: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    # v1 and v1alpha are the same messages under two packages: one encoding serves both.
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    replies = [reply async for reply in call(iter([request]))]
    assert len(replies) == 1
    reply: reflection_pb2.ServerReflectionResponse = replies[0]
    return reply


@pytest.mark.parametrize("method", REFLECTION_METHODS)
async def test_reflection_lists_and_describes_the_services(watchword: Running, method: str) -> None:
    listing = await _reflect(
        watchword.channel, method, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {service.name for service in listing.list_services_response.service}
    assert {
        "watchword.auth.v1.AuthService",
        "watchword.auth.v1.AccessService",
        "watchword.auth.v1.AdminService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    # Each listed service can be described (what `grpcurl describe` asks next).
    for name in sorted(names):
        found = await _reflect(
            watchword.channel,
            method,
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=name),
        )
        assert found.WhichOneof("message_response") == "file_descriptor_response", name
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(data)
            for data in found.file_descriptor_response.file_descriptor_proto
        ]
        package, _, service = name.rpartition(".")
        assert any(
            file.package == package and service in [s.name for s in file.service] for file in files
        ), name


async def test_refuses_a_database_whose_schema_is_behind(postgres_server_url: str) -> None:
    with postgres_database(server_url=postgres_server_url) as empty_url:
        server = WatchwordServer(settings_for(empty_url), clock=ManualClock())
        with pytest.raises(SchemaNotReady, match="watchword migrate"):
            await server.start()
        await server.stop(0)


async def test_embedded_sqlite_migrates_itself_and_serves(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'watchword.db'}",
        listen="127.0.0.1:0",
        hmac_alg="bcrypt(4)",
        registration_verification=False,
    )
    server = WatchwordServer(settings, clock=ManualClock())
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = auth_service_pb2_grpc.AuthServiceStub(channel)
            replies = await asyncio.gather(
                *(
                    stub.Register(
                        auth.RegisterRequest(
                            email=f"u{i}@example.com",
                            password="correct horse",
                            first_name="A",
                            last_name="B",
                        )
                    )
                    for i in range(10)
                )
            )
            assert all(reply.session_token for reply in replies)
            seen = await stub.Introspect(
                auth.IntrospectRequest(session_token=replies[0].session_token)
            )
            assert seen.user.email == "u0@example.com"
    finally:
        await server.stop(0)
    # The generated pepper sits beside the database, readable by its owner only.
    key = tmp_path / "watchword.key"
    assert key.stat().st_mode & 0o077 == 0


def test_a_postgres_url_needs_an_hmac_key() -> None:
    with pytest.raises(ValueError, match="hmac_key is required"):
        Settings(database_url="postgresql+psycopg://localhost/x", hmac_key=None)


@pytest.fixture
def cli_database(postgres_server_url: str) -> Iterator[str]:
    with postgres_database(server_url=postgres_server_url) as url:
        yield url


def test_cli_migrates_then_serves_and_stops_on_sigterm(cli_database: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "WATCHWORD_DATABASE_URL": cli_database,
        "WATCHWORD_HMAC_KEY": TEST_PEPPER,
        "WATCHWORD_LISTEN": f"127.0.0.1:{port}",
        "WATCHWORD_HMAC_ALG": "bcrypt(4)",
        "WATCHWORD_SHUTDOWN_DRAIN_SECONDS": "0",  # stopped at once: draining is test_drain's
    }
    command = [sys.executable, "-m", "watchword_server"]
    refused = subprocess.run(
        [*command, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert refused.returncode == 1
    assert "watchword migrate" in refused.stderr

    migrated = subprocess.run(
        [*command, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert migrated.returncode == 0, migrated.stderr

    server = subprocess.Popen([*command, "serve"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            health: Any = health_pb2_grpc.HealthStub(channel)
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stderr is not None:
            server.stderr.close()
