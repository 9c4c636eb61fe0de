"""Short helpers for the end-to-end tests: register and log in users."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from tests.support.servers import Running
from watchword.auth.v1 import auth_service_pb2 as auth

__all__ = ["PASSWORD", "login", "register", "register_reply"]

PASSWORD = "correct horse battery"


async def register(running: Running, email: str) -> tuple[str, str]:
    """Register an active user; returns ``(user_id, session_token)``."""
    reply = await running.auth.Register(
        auth.RegisterRequest(email=email, password=PASSWORD, first_name="A", last_name="B")
    )
    return str(reply.user.id), str(reply.session_token)


async def register_reply(
    running: Running,
    email: str = "ada@example.com",
    password: str = PASSWORD,
    *,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    extra: Mapping[str, Any] | None = None,
) -> auth.RegisterResponse:
    """Register; returns Register's whole reply (``register`` gives the ids only)."""
    fields = struct_pb2.Struct()
    fields.update(extra or {})
    reply: auth.RegisterResponse = await running.auth.Register(
        auth.RegisterRequest(
            email=email,
            password=password,
            first_name=first_name,
            last_name=last_name,
            extra=fields,
        )
    )
    return reply


async def login(running: Running, email: str, password: str = PASSWORD) -> str:
    """Log in; returns the session token."""
    reply = await running.auth.Authenticate(
        auth.AuthenticateRequest(email=email, password=password)
    )
    return str(reply.session_token)
