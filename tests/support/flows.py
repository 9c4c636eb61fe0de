"""Short helpers for the end-to-end tests: register and log in users."""

from __future__ import annotations

from tests.support.servers import Running
from watchword.auth.v1 import auth_service_pb2 as auth

__all__ = ["PASSWORD", "login", "register"]

PASSWORD = "correct horse battery"


async def register(running: Running, email: str) -> tuple[str, str]:
    """Register an active user; returns ``(user_id, session_token)``."""
    reply = await running.auth.Register(
        auth.RegisterRequest(email=email, password=PASSWORD, first_name="A", last_name="B")
    )
    return str(reply.user.id), str(reply.session_token)


async def login(running: Running, email: str, password: str = PASSWORD) -> str:
    """Log in; returns the session token."""
    reply = await running.auth.Authenticate(
        auth.AuthenticateRequest(email=email, password=password)
    )
    return str(reply.session_token)
