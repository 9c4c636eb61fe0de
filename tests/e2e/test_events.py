"""The audit log: registration, login, failed login and logout, with real values."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.support.flows import PASSWORD
from tests.support.rows import table_rows
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth


def events(database_url: str) -> list[dict[str, Any]]:
    rows = table_rows(
        database_url,
        "events",
        "kind",
        "user_id",
        "description",
        "client_ip",
        "origin",
        order_by="id",
    )
    for row in rows:
        row["user_id"] = None if row["user_id"] is None else str(row["user_id"])
    return rows


async def flows(running: Running, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    registered = await running.auth.Register(
        auth.RegisterRequest(
            email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
        ),
        metadata=metadata,
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await running.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password="wrong password"),
            metadata=metadata,
        )
    login = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD), metadata=metadata
    )
    await running.auth.Logout(
        auth.LogoutRequest(session_token=login.session_token), metadata=metadata
    )
    return str(registered.user.id)


async def test_each_flow_writes_a_rendered_event(watchword: Running, database_url: str) -> None:
    user_id = await flows(watchword)
    rows = events(database_url)
    assert [row["kind"] for row in rows] == ["registration", "login_failed", "login", "logout"]
    assert {row["user_id"] for row in rows} == {user_id}
    assert rows[0]["description"] == f"User {user_id} registered"
    assert rows[1]["description"] == "Failed login for ada@example.com"
    assert rows[2]["description"] == f"User {user_id} logged in"
    assert rows[3]["description"] == f"User {user_id} logged out"
    assert {row["client_ip"] for row in rows} == {"127.0.0.1"}
    assert {row["origin"] for row in rows} == {"auth"}


async def test_failed_login_of_unknown_email_is_logged_without_user(
    watchword: Running, database_url: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError):
        await watchword.auth.Authenticate(
            auth.AuthenticateRequest(email="ghost@example.com", password=PASSWORD)
        )
    [row] = events(database_url)
    assert row["kind"] == "login_failed"
    assert row["user_id"] is None
    assert row["description"] == "Failed login for ghost@example.com"


async def test_backend_reports_the_end_users_address(watchword: Running, database_url: str) -> None:
    await flows(watchword, metadata=(("x-forwarded-for", "203.0.113.7, 10.0.0.1"),))
    assert {row["client_ip"] for row in events(database_url)} == {"203.0.113.7"}


async def test_templates_come_from_messages(start_server: StartServer, database_url: str) -> None:
    running = await start_server(messages={"login_log": "{email} came in ({unknown})"})
    await flows(running)
    logins = [row for row in events(database_url) if row["kind"] == "login"]
    assert [row["description"] for row in logins] == ["ada@example.com came in ()"]


async def test_log_events_off_writes_nothing(start_server: StartServer, database_url: str) -> None:
    running = await start_server(log_events=False)
    await flows(running)
    assert events(database_url) == []
