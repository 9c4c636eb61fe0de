"""Fixtures that build on each other: PostgreSQL server -> database -> Watchword server -> stubs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from tests.support.clock import ManualClock
from tests.support.metadata import bearer_interceptors
from tests.support.postgres import connect, isolation_level, postgres_database, postgres_server
from tests.support.servers import Running, StartServer, migrate, settings_for
from tests.support.smtp import SmtpServer
from watchword.auth.v1 import (
    access_service_pb2_grpc,
    admin_service_pb2_grpc,
    auth_service_pb2_grpc,
)
from watchword_server.app import WatchwordServer
from watchword_server.domain.access.service_keys import Scope

_TABLES = (
    "users, sessions, account_keys, groups, memberships, permissions, events, "
    "service_keys, mail_outbox, login_failures, emmett_imports, totp_factors, recovery_codes, "
    "second_factor_challenges, passkeys, passkey_challenges"
)


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One PostgreSQL server for the whole run (started here if none is reachable)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_database(postgres_server_url: str) -> Iterator[str]:
    """This run's own database, migrated once."""
    with postgres_database(server_url=postgres_server_url) as url:
        asyncio.run(migrate(url))
        with connect(url) as conn:  # WATCHWORD_TEST_ISOLATION took effect, or the run stops
            row = conn.execute("SHOW transaction_isolation").fetchone()
        assert row is not None and row[0] == isolation_level(), row
        yield url


@pytest.fixture
def postgres_database_url(migrated_database: str) -> Iterator[str]:
    """The run's PostgreSQL database, emptied before each test."""
    with connect(migrated_database, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    yield migrated_database


@pytest.fixture
def database_url(postgres_database_url: str) -> str:
    """The test's database (PostgreSQL here; tests/e2e runs on SQLite too)."""
    return postgres_database_url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def start_server(database_url: str, clock: ManualClock) -> AsyncIterator[StartServer]:
    """A factory: ``await start_server(setting=value, ...)`` starts a configured server
    (``hooks=``, ``extra_services=`` and ``reflected_services=`` go to WatchwordServer)."""
    started: list[Running] = []

    async def start(**overrides: Any) -> Running:
        # database_url= may name another database, e.g. an embedded SQLite file.
        url = overrides.pop("database_url", database_url)
        # What WatchwordServer takes beside the settings (an embedding's hooks, services).
        options = {
            name: overrides.pop(name)
            for name in ("hooks", "extra_services", "reflected_services")
            if name in overrides
        }
        server = WatchwordServer(settings_for(url, **overrides), clock=clock, **options)
        port = await server.start()
        address = f"127.0.0.1:{port}"
        assert server.service_keys is not None
        suffix = f"{len(started)}-{id(server)}"
        access_key = await server.service_keys.create(f"test-access-{suffix}", Scope.ACCESS)
        admin_key = await server.service_keys.create(f"test-admin-{suffix}", Scope.ADMIN)
        channel = grpc.aio.insecure_channel(address)
        access_channel = grpc.aio.insecure_channel(
            address, interceptors=bearer_interceptors(access_key)
        )
        admin_channel = grpc.aio.insecure_channel(
            address, interceptors=bearer_interceptors(admin_key)
        )
        running = Running(
            server=server,
            channel=channel,
            auth=auth_service_pb2_grpc.AuthServiceStub(channel),
            access=access_service_pb2_grpc.AccessServiceStub(access_channel),
            admin=admin_service_pb2_grpc.AdminServiceStub(admin_channel),
            clock=clock,
            address=address,
            access_key=access_key,
            admin_key=admin_key,
            keyed_channels=[access_channel, admin_channel],
        )
        started.append(running)
        return running

    yield start
    for running in started:
        for channel in (running.channel, *running.keyed_channels):
            await channel.close(None)
        await running.server.stop(0)


@pytest.fixture
async def watchword(start_server: StartServer) -> Running:
    """A server with the test defaults (verification off, cheap bcrypt)."""
    return await start_server()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """A real SMTP server on loopback that collects what it receives."""
    async with SmtpServer() as server:
        yield server
