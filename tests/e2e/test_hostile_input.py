"""Whatever a caller sends, the answer is a clear status, never INTERNAL or UNKNOWN."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.conftest import Running
from tests.support.rpc_errors import details_of
from watchword.auth.v1 import auth_service_pb2 as auth

HOSTILE = [
    "\x00",
    "ada\x00@example.com",
    "a" * 100_000,
    "ä" * 300 + "@example.com",
    "' OR 1=1 --",
    "\u202e\ufeff@example.com",
    "ada@example.com\n",
    "\ud7ff@\ue000.com",
]
CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.ALREADY_EXISTS,
}


async def expect_clear_status(call: object) -> None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        details = details_of(error)
        assert details.code in CLEAR, f"{details.code}: {error.details()}"
        assert details.reason


@pytest.mark.parametrize("text", HOSTILE)
async def test_register_fields(watchword: Running, text: str) -> None:
    good: dict[str, Any] = {
        "email": "ada@example.com",
        "password": "correct horse",
        "first_name": "A",
        "last_name": "B",
    }
    for field in good:
        await expect_clear_status(
            watchword.auth.Register(auth.RegisterRequest(**{**good, field: text}))
        )


@pytest.mark.parametrize("text", HOSTILE)
async def test_login_and_session_fields(watchword: Running, text: str) -> None:
    await expect_clear_status(
        watchword.auth.Authenticate(auth.AuthenticateRequest(email=text, password="x"))
    )
    await expect_clear_status(
        watchword.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=text)
        )
    )
    await expect_clear_status(watchword.auth.Introspect(auth.IntrospectRequest(session_token=text)))
    await expect_clear_status(watchword.auth.Logout(auth.LogoutRequest(session_token=text)))
