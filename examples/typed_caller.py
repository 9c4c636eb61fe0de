"""A typical caller of the Watchword Python client; it passes ``mypy --strict`` as is.

Run against a server (``make run``) with an admin key (``watchword keys create NAME
--scope admin``)::

    python examples/typed_caller.py localhost:50051 <admin key>
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import watchword
from watchword.auth.v1 import resources_pb2


@dataclass(frozen=True)
class Login:
    user_id: str
    session_token: str


async def sign_in(client: watchword.AsyncClient, email: str, password: str) -> Login | str:
    """Log in; a user-facing message when it fails for a reason the user can fix."""
    try:
        reply = await client.authenticate(email=email, password=password, timeout=5)
    except watchword.Unauthenticated as error:
        return error.message  # the configured text, e.g. "Invalid email or password"
    except watchword.FailedPrecondition as error:
        if error.reason == "ACCOUNT_PENDING_VERIFICATION":
            return "Please confirm your e-mail address first."
        raise
    return Login(user_id=reply.user.id, session_token=reply.session_token)


async def sign_up(client: watchword.AsyncClient, email: str, password: str) -> dict[str, str]:
    """Register; the field errors to show next to the form's inputs."""
    try:
        await client.register(email=email, password=password, first_name="Ada", last_name="L")
    except watchword.InvalidArgument as error:
        return {violation.field: violation.description for violation in error.violations}
    except watchword.AlreadyExists:
        return {"email": "This address is taken."}
    return {}


async def may_edit(client: watchword.AsyncClient, login: Login, post_id: int) -> bool:
    return await client.has_permission(
        name="edit", table_name="Post", record_id=str(post_id), session_token=login.session_token
    )


async def audit(client: watchword.AsyncClient) -> list[str]:
    """The e-mail addresses of every blocked user, over as many pages as it takes."""
    blocked = resources_pb2.USER_STATUS_BLOCKED
    return [user.email async for user in client.iter_users(status=blocked, page_size=100)]


async def first_login(client: watchword.AsyncClient) -> resources_pb2.Event | None:
    async with client.watch_events(kind=resources_pb2.EVENT_KIND_LOGIN, timeout=30) as events:
        await events.subscribed()
        try:
            return await anext(events)
        except watchword.DeadlineExceeded:
            return None


def blocking_profile(target: str, session_token: str) -> str:
    with watchword.Client(target, metadata=[("x-app", "typed-caller")]) as client:
        user: resources_pb2.User = client.get_profile(session_token=session_token)
        return f"{user.first_name} {user.last_name} <{user.email}>"


async def main(target: str, admin_key: str) -> None:
    async with watchword.AsyncClient(target, service_key=admin_key, timeout=10) as client:
        problems = await sign_up(client, "ada@example.com", "correct horse battery")
        print("sign-up problems:", problems or "none")
        login = await sign_in(client, "ada@example.com", "correct horse battery")
        if isinstance(login, str):
            print("cannot log in:", login)
            return
        print("may edit post 7:", await may_edit(client, login, 7))
        print("blocked users:", await audit(client))
        profile = await asyncio.to_thread(blocking_profile, target, login.session_token)
        print("profile:", profile)
        await client.logout(session_token=login.session_token)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
