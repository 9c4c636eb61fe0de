"""The test server's face: ``Running`` (a started server with its stubs and keys), the
settings tests start it with, and the schema migration the fixtures in
``tests/conftest.py`` use."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from tests.support.clock import ManualClock
from watchword.auth.v1 import (
    access_service_pb2_grpc,
    admin_service_pb2_grpc,
    auth_service_pb2_grpc,
)
from watchword_server.app import WatchwordServer
from watchword_server.config import Settings
from watchword_server.storage.db import create_engine
from watchword_server.storage.schema import upgrade

__all__ = ["TEST_PEPPER", "Running", "StartServer", "migrate", "settings_for"]

TEST_PEPPER = "test-pepper-0123456789abcdef"


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the current schema."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@dataclass
class Running:
    """A started server, with stubs that carry service keys (``access``, ``admin``) and a
    plain ``channel`` that carries none."""

    server: WatchwordServer
    channel: grpc.aio.Channel
    auth: auth_service_pb2_grpc.AuthServiceAsyncStub
    access: access_service_pb2_grpc.AccessServiceAsyncStub
    admin: admin_service_pb2_grpc.AdminServiceAsyncStub
    clock: ManualClock
    address: str
    access_key: str
    admin_key: str
    keyed_channels: list[grpc.aio.Channel]


StartServer = Callable[..., Awaitable[Running]]


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "hmac_key": TEST_PEPPER,
        "hmac_alg": "bcrypt(4)",
        "listen": "127.0.0.1:0",
        "registration_verification": False,
        "grace_period": 0,
    }
    values.update(overrides)
    return Settings(**values)
