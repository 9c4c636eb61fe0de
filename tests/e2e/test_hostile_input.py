"""Whatever a caller sends, the answer is a clear status, never INTERNAL or UNKNOWN."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from tests.support.rpc_errors import details_of
from tests.support.servers import Running
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2

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


@pytest.mark.parametrize("text", HOSTILE)
async def test_key_password_and_profile_fields(watchword: Running, text: str) -> None:
    token = (
        await watchword.auth.Register(
            auth.RegisterRequest(
                email="eve@example.com", password="correct horse", first_name="E", last_name="V"
            )
        )
    ).session_token
    await expect_clear_status(watchword.auth.Verify(auth.VerifyRequest(verification_key=text)))
    await expect_clear_status(
        watchword.auth.RequestPasswordReset(auth.RequestPasswordResetRequest(email=text))
    )
    await expect_clear_status(
        watchword.auth.ResetPassword(auth.ResetPasswordRequest(reset_key=text, new_password=text))
    )
    await expect_clear_status(
        watchword.auth.ChangePassword(
            auth.ChangePasswordRequest(session_token=token, old_password=text, new_password=text)
        )
    )
    extra = struct_pb2.Struct()
    extra.update({text[:100] or "k": text})
    await expect_clear_status(
        watchword.auth.UpdateProfile(
            auth.UpdateProfileRequest(
                session_token=token,
                user=resources_pb2.User(first_name=text, last_name=text, extra=extra),
                update_mask=field_mask_pb2.FieldMask(paths=[text[:100], "extra", "first_name"]),
            )
        )
    )
