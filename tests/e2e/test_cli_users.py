"""`watchword users block|allow|disable|approve EMAIL` and `watchword users list`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest

from tests.support.cli import watchword_cli
from tests.support.flows import PASSWORD, login
from tests.support.rows import table_rows, update_rows
from tests.support.servers import Running
from watchword.auth.v1 import auth_service_pb2 as auth


def _create(database_url: str, email: str) -> str:
    made = watchword_cli(database_url, "users", "create", email, stdin=f"{PASSWORD}\n")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip().splitlines()[-1]


def test_status_commands_change_the_account_and_log_an_event(database_url: str) -> None:
    user_id = _create(database_url, "ada@example.com")
    for command, status in (("block", "blocked"), ("allow", "active"), ("disable", "disabled")):
        changed = watchword_cli(database_url, "users", command, "ADA@example.com")
        assert changed.returncode == 0, changed.stderr
        assert changed.stdout.strip() == f"ada@example.com is now {status} ({user_id})"
        assert table_rows(database_url, "users", "status") == [{"status": status}]
    events = table_rows(database_url, "events", "kind", "origin", order_by="id")
    assert [event["kind"] for event in events] == [
        "user_created",
        "user_blocked",
        "user_allowed",
        "user_disabled",
    ]
    assert {event["origin"] for event in events} == {"cli"}


def test_unknown_addresses_and_refused_approvals_fail_with_a_message(database_url: str) -> None:
    for command in ("block", "allow", "disable", "approve"):
        missing = watchword_cli(database_url, "users", command, "nobody@example.com")
        assert missing.returncode == 1
        assert missing.stderr.strip() == "watchword: no user has the address 'nobody@example.com'"
        assert missing.stdout == ""
    _create(database_url, "ada@example.com")
    assert watchword_cli(database_url, "users", "block", "ada@example.com").returncode == 0
    refused = watchword_cli(database_url, "users", "approve", "ada@example.com")
    assert refused.returncode == 1
    assert "cannot be approved: it is blocked" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert table_rows(database_url, "users", "status") == [{"status": "blocked"}]
    # Approval makes an account waiting for it active.
    asyncio.run(update_rows(database_url, "users", status="pending_approval"))  # no server runs
    approved = watchword_cli(database_url, "users", "approve", "ada@example.com")
    assert approved.returncode == 0, approved.stderr
    assert "is now active" in approved.stdout


def test_list_prints_every_account_across_pages(database_url: str) -> None:
    emails = [f"user{index}@example.com" for index in range(5)]
    for email in emails:
        _create(database_url, email)
    assert watchword_cli(database_url, "users", "block", emails[3]).returncode == 0
    listed = watchword_cli(database_url, "users", "list", "--page-size", "2")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "STATUS", "CREATED"]
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == emails  # oldest first, nothing lost between pages
    assert [row[1] for row in rows] == ["active", "active", "active", "blocked", "active"]
    assert all(len(row) == 4 for row in rows)  # the creation date and time
    assert lines[-1] == "5 user(s)"
    blocked = watchword_cli(database_url, "users", "list", "--status", "blocked")
    assert [line.split()[0] for line in blocked.stdout.splitlines()[1:-1]] == [emails[3]]
    empty = watchword_cli(database_url, "users", "list", "--status", "disabled")
    assert empty.stdout.splitlines()[-1] == "0 user(s)"


@pytest.mark.postgres_only  # the change notice reaches the server through LISTEN/NOTIFY
async def test_blocking_from_the_command_line_ends_sessions_on_a_running_server(
    watchword: Running, database_url: str
) -> None:
    _create(database_url, "ada@example.com")
    token = await login(watchword, "ada@example.com")
    seen = await watchword.auth.Introspect(auth.IntrospectRequest(session_token=token))
    assert seen.user.email == "ada@example.com"  # now cached by the server
    assert watchword_cli(database_url, "users", "block", "ada@example.com").returncode == 0
    # The notice travels on its own: allow it a second (the cache would trust 30).
    deadline = time.monotonic() + 1.0
    while True:
        try:
            await watchword.auth.Introspect(auth.IntrospectRequest(session_token=token))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            break
        assert time.monotonic() < deadline, "the session outlived the block"
        await asyncio.sleep(0.02)
    assert watchword_cli(database_url, "users", "allow", "ada@example.com").returncode == 0
    assert await login(watchword, "ada@example.com")


def test_config_names_the_database_for_any_command(database_url: str, tmp_path: Path) -> None:
    _create(database_url, "ada@example.com")
    config = tmp_path / "watchword.toml"
    config.write_text(f'database_url = "{database_url}"\n', encoding="utf-8")
    listed = watchword_cli(None, "users", "list", "--config", str(config))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].startswith("ada@example.com ")
