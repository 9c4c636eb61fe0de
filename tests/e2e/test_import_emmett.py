"""`watchword import-emmett`: databases made by the real Emmett 2.8 (tests/fixtures/emmett)
imported into a real Watchword database, then checked through the server's RPCs.

Each test runs on PostgreSQL and on the embedded SQLite as the target; the PostgreSQL
source (a pg_dump of the same app) is loaded into a fresh database of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import grpc
import pytest

from tests.support.postgres import connect, postgres_database
from tests.support.rows import table_rows
from tests.support.rpc_errors import failure
from tests.support.servers import TEST_PEPPER, Running, StartServer
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2
from watchword_server.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emmett"
TABLES = ("users", "groups", "memberships", "permissions", "events", "emmett_imports")
# The renamed variant's extra columns, declared as Watchword custom fields (nickname is not).
CUSTOM_FIELDS = [
    {"name": "phone", "type": "string"},
    {"name": "karma", "type": "integer"},
    {"name": "newsletter", "type": "boolean"},
]


def password_of(email: str) -> str:
    """The fixtures' passwords (see make_fixtures.py)."""
    return "old password of " + email.split("@")[0].lower()


async def import_emmett(
    database_url: str,
    source_url: str,
    *arguments: str,
    custom_fields: bool = False,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the command: its entry point in a thread of this process (quick), or with
    ``process`` as shipped, in a process of its own. In a thread either way, so a server
    on this test's loop keeps serving (on SQLite it may hold the lock the command awaits)."""
    env = {
        "WATCHWORD_DATABASE_URL": database_url,
        "WATCHWORD_HMAC_KEY": TEST_PEPPER,
        "WATCHWORD_HMAC_ALG": "bcrypt(4)",
    }
    if custom_fields:
        env["WATCHWORD_CUSTOM_FIELDS"] = json.dumps(CUSTOM_FIELDS)
    argv = ["import-emmett", source_url, *arguments]
    if process:
        return await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "watchword_server", *argv],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return await asyncio.to_thread(_in_process, argv, env)


def _in_process(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = main(argv)
    return subprocess.CompletedProcess(argv, status, out.getvalue(), err.getvalue())


def counts(database_url: str) -> dict[str, int]:
    return {table: len(table_rows(database_url, table)) for table in TABLES}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of the default Emmett database (the test may replace it with a later one)."""
    path = tmp_path / "emmett.sqlite"
    shutil.copyfile(FIXTURES / "default.sqlite", path)
    return path


@pytest.fixture
def postgres_source(postgres_server_url: str) -> Iterator[str]:
    """The default Emmett app built on PostgreSQL, from its pg_dump, in a fresh database."""
    with postgres_database("emmett_source", server_url=postgres_server_url) as url:
        with connect(url, autocommit=True) as conn:
            conn.execute((FIXTURES / "default.pg.sql").read_text())
        yield url.replace("postgresql+psycopg://", "postgresql://")


async def lookup(running: Running, email: str) -> resources_pb2.User:
    reply = await running.admin.LookupUser(admin.LookupUserRequest(email=email))
    return reply.user


async def allowed(
    running: Running, name: str, table: str = "", record: str = "", **who: str
) -> bool:
    reply = await running.access.HasPermission(
        access.HasPermissionRequest(name=name, table_name=table, record_id=record, **who)
    )
    return bool(reply.allowed)


async def member(running: Running, user_id: str, group: str) -> bool:
    reply = await running.access.HasMembership(
        access.HasMembershipRequest(user_id=user_id, group=group)
    )
    return bool(reply.member)


def stored_hash(database_url: str, email: str) -> str:
    rows = table_rows(database_url, "users", "email", "password_hash")
    return next(str(row["password_hash"]) for row in rows if row["email"] == email)


async def test_users_log_in_with_their_old_passwords_and_keep_their_status(
    start_server: StartServer, database_url: str, source: Path
) -> None:
    done = await import_emmett(database_url, f"sqlite:///{source}", "--skip-conflicts")
    assert done.returncode == 0, done.stderr
    assert "imported:" in done.stdout
    running = await start_server()

    for email in ("ada@example.com", "zoë@example.com", "grace@example.com"):
        assert stored_hash(database_url, email).startswith("pbkdf2(2000,20,sha512)$")
        reply = await running.auth.Authenticate(
            auth.AuthenticateRequest(email=email, password=password_of(email))
        )
        assert reply.session_token and reply.user.email == email
        # Upgraded at that login: the legacy hash is gone, the password still works.
        assert stored_hash(database_url, email).startswith("hmac-bcrypt$")
        again = await running.auth.Authenticate(
            auth.AuthenticateRequest(email=email, password=password_of(email))
        )
        assert again.session_token
    # Stored as typed, found whatever the case.
    bob = await running.auth.Authenticate(
        auth.AuthenticateRequest(
            email="bob.builder@example.com", password=password_of("Bob.Builder@x")
        )
    )
    assert bob.user.email == "Bob.Builder@Example.COM"
    wrong = await failure(
        running.auth.Authenticate(auth.AuthenticateRequest(email="ada@example.com", password="x"))
    )
    assert wrong.reason == "INVALID_CREDENTIALS"

    statuses = {
        "carol@example.com": ("USER_STATUS_PENDING_VERIFICATION", "ACCOUNT_PENDING_VERIFICATION"),
        "dave@example.com": ("USER_STATUS_PENDING_APPROVAL", "ACCOUNT_PENDING_APPROVAL"),
        "erin@example.com": ("USER_STATUS_DISABLED", "ACCOUNT_DISABLED"),
        "frank@example.com": ("USER_STATUS_BLOCKED", "ACCOUNT_BLOCKED"),
    }
    for email, (status, reason) in statuses.items():
        user = await lookup(running, email)
        assert resources_pb2.UserStatus.Name(user.status) == status
        refused = await failure(
            running.auth.Authenticate(
                auth.AuthenticateRequest(email=email, password=password_of(email))
            )
        )
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
        # Refused before the hash is touched: still Emmett's.
        assert stored_hash(database_url, email).startswith("pbkdf2(")
    ada = await lookup(running, "ada@example.com")
    assert ada.first_name == "Ada" and ada.email_verified
    assert not (await lookup(running, "carol@example.com")).email_verified
    # Emmett's naive UTC creation time, kept.
    source_rows = _sqlite_rows(source, "SELECT created_at FROM auth_users WHERE id = 1")
    assert ada.create_time.ToDatetime(tzinfo=UTC) == datetime.fromisoformat(
        source_rows[0][0]
    ).replace(tzinfo=UTC)


async def test_memberships_and_grants_answer_as_in_emmett(
    start_server: StartServer, database_url: str, source: Path
) -> None:
    done = await import_emmett(database_url, f"sqlite:///{source}", "--skip-conflicts")
    assert done.returncode == 0, done.stderr
    # The grants that become wider are named in the summary, for review.
    wide = re.search(r"(\d+) grant\(s\) name no table or no record \((.*?)\): ", done.stdout)
    assert wide is not None, done.stdout
    assert wide.group(2) == "admins:ban_users(*, *), editors:read(posts, *), readers:read(*, 5)"
    running = await start_server()
    ada, bob, carol, frank = [
        (await lookup(running, email)).id
        for email in (
            "ada@example.com",
            "bob.builder@example.com",
            "carol@example.com",
            "frank@example.com",
        )
    ]
    assert await member(running, ada, "admins")
    assert await member(running, bob, "editors") and await member(running, bob, "readers")
    assert not await member(running, bob, "admins")
    assert await member(running, carol, "readers")
    # A BLOCKED user has no memberships in Watchword (Emmett would still say yes).
    assert not await member(running, frank, "admins")

    listed = await running.admin.ListMemberships(admin.ListMembershipsRequest(group="admins"))
    assert sorted(m.user_id for m in listed.memberships) == sorted(
        [ada, frank]
    )  # ada's twice: once
    grants = await running.admin.ListPermissions(admin.ListPermissionsRequest(group="admins"))
    # ban_users was granted twice (table NULL, then ''): one grant.
    assert [(p.name, p.table_name, p.record_id) for p in grants.permissions] == [
        ("ban_users", "", "")
    ]

    # Each grant allows the check with its own values, for its group and its members.
    assert await allowed(running, "write", "Preference", "7", group="editors")
    assert await allowed(running, "write", "Preference", "7", user_id=bob)
    assert await allowed(running, "ban_users", user_id=ada)
    assert await allowed(running, "read", "posts", user_id=bob)
    assert await allowed(running, "read", "", "5", user_id=carol)
    # What Emmett refused is refused.
    assert not await allowed(running, "write", "Preference", "8", user_id=bob)
    assert not await allowed(running, "write", "posts", "7", user_id=bob)
    assert not await allowed(running, "ban_users", user_id=bob)
    assert not await allowed(running, "read", "", "5", user_id=ada)
    # The two places Watchword answers otherwise, on purpose (docs/import-emmett.md):
    # a check is precise (Emmett's has_permission("write") matched any "write" grant) ...
    assert not await allowed(running, "write", user_id=bob)
    # ... and a grant's empty fields are wildcards (Emmett matched them exactly).
    assert await allowed(running, "ban_users", "users", "3", user_id=ada)
    assert await allowed(running, "read", "posts", "4", user_id=bob)


async def test_events_come_with_their_kind_user_and_time(
    start_server: StartServer, database_url: str, source: Path
) -> None:
    done = await import_emmett(database_url, f"sqlite:///{source}", "--skip-conflicts")
    assert done.returncode == 0, done.stderr
    assert "'Nightly export ran' ×1" in done.stdout  # the app's own event: reported
    assert "imported with kind EVENT_KIND_APPLICATION" in done.stdout
    running = await start_server()
    ada = (await lookup(running, "ada@example.com")).id
    reply = await running.admin.ListEvents(admin.ListEventsRequest(user_id=ada))
    kinds = [resources_pb2.EventKind.Name(event.kind) for event in reply.events]
    assert sorted(kinds) == sorted(
        [
            "EVENT_KIND_REGISTRATION",
            "EVENT_KIND_EMAIL_VERIFICATION",
            "EVENT_KIND_LOGIN",
            "EVENT_KIND_LOGOUT",
        ]
    )
    login = next(event for event in reply.events if event.kind == resources_pb2.EVENT_KIND_LOGIN)
    assert login.description == f"User {ada} logged in"
    assert (login.origin, login.client_ip) == ("auth", "unavailable")
    emmett_time = _sqlite_rows(source, "SELECT created_at FROM auth_events WHERE id = 20")[0][0]
    assert login.create_time.ToDatetime(tzinfo=UTC) == datetime.fromisoformat(emmett_time).replace(
        tzinfo=UTC
    )
    grace = (await lookup(running, "grace@example.com")).id
    retrieval = await running.admin.ListEvents(
        admin.ListEventsRequest(user_id=grace, kind=resources_pb2.EVENT_KIND_PASSWORD_RETRIEVAL)
    )
    assert len(retrieval.events) == 1
    # The app's own event (auth.log_event, no user) keeps its text, origin and time.
    own = await running.admin.ListEvents(
        admin.ListEventsRequest(kind=resources_pb2.EVENT_KIND_APPLICATION)
    )
    assert [(e.description, e.origin, e.user_id) for e in own.events] == [
        ("Nightly export ran", "cron", "")
    ]
    # Emmett's events carry no structured data: theirs is empty, as ours is.
    assert own.events[0].HasField("data") and not own.events[0].data.fields
    assert login.HasField("data") and not login.data.fields
    emmett_time = _sqlite_rows(source, "SELECT created_at FROM auth_events WHERE id = 22")[0][0]
    assert own.events[0].create_time.ToDatetime(tzinfo=UTC) == datetime.fromisoformat(
        emmett_time
    ).replace(tzinfo=UTC)


async def test_a_second_run_changes_nothing_and_a_later_one_adds_only_the_new_rows(
    start_server: StartServer, database_url: str, source: Path
) -> None:
    url = f"sqlite:///{source}"
    first = await import_emmett(database_url, url, "--skip-conflicts")
    assert first.returncode == 0, first.stderr
    before = counts(database_url)
    stored = table_rows(database_url, "users", "id", "email", "password_hash", "update_time")
    second = await import_emmett(database_url, url, "--skip-conflicts")
    assert second.returncode == 0, second.stderr
    assert "nothing to import" in second.stdout
    assert counts(database_url) == before
    assert table_rows(database_url, "users", "id", "email", "password_hash", "update_time") == (
        stored
    )

    # The Emmett app went on: one more user, membership and grant (same ids for the rest).
    shutil.copyfile(FIXTURES / "grown.sqlite", source)
    later = await import_emmett(database_url, url, "--skip-conflicts")
    assert later.returncode == 0, later.stderr
    after = counts(database_url)
    assert after["users"] == before["users"] + 1
    assert after["memberships"] == before["memberships"] + 1
    assert after["permissions"] == before["permissions"] + 1
    assert after["events"] == before["events"] + 1  # heidi's registration
    running = await start_server()
    heidi = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="heidi@example.com", password=password_of("heidi@x"))
    )
    assert await allowed(running, "publish", "posts", "9", user_id=heidi.user.id)
    assert await member(running, heidi.user.id, "editors")


async def test_a_dry_run_reports_and_writes_nothing(database_url: str, source: Path) -> None:
    url = f"sqlite:///{source}"
    dry = await import_emmett(database_url, url, "--dry-run", "--skip-conflicts")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written (40 row(s) would be)" in dry.stdout
    assert counts(database_url) == dict.fromkeys(TABLES, 0)
    done = await import_emmett(database_url, url, "--skip-conflicts")
    assert "imported: 40 row(s) written" in done.stdout
    # The source is only read.
    assert _digest(source) == _digest(FIXTURES / "default.sqlite")


async def test_addresses_that_collide_once_case_is_ignored_stop_the_import(
    start_server: StartServer, database_url: str, source: Path
) -> None:
    url = f"sqlite:///{source}"
    stopped = await import_emmett(database_url, url, process=True)  # the exit status, as shipped
    assert stopped.returncode == 1
    assert (
        "conflict: user 9 <Ivy@example.com>: the same address as user 10 <ivy@EXAMPLE.com> "
        "once case is ignored (not merged)"
    ) in stopped.stdout
    assert "conflict: user 10 <ivy@EXAMPLE.com>" in stopped.stdout
    assert "nothing was written: 2 conflict(s)" in stopped.stdout
    assert counts(database_url) == dict.fromkeys(TABLES, 0)
    dry = await import_emmett(database_url, url, "--dry-run")
    assert dry.returncode == 1 and "conflict: user 9" in dry.stdout

    skipped = await import_emmett(database_url, url, "--skip-conflicts")
    assert skipped.returncode == 0, skipped.stderr
    running = await start_server()
    missing = await failure(
        running.admin.LookupUser(admin.LookupUserRequest(email="ivy@example.com"))
    )
    assert missing.code == grpc.StatusCode.NOT_FOUND
    # Neither is merged into the other, on a later run either.
    again = await import_emmett(database_url, url, "--skip-conflicts")
    assert "conflict: user 9" in again.stdout and "nothing to import" in again.stdout


async def test_a_renamed_user_table_with_custom_fields(
    start_server: StartServer, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "renamed.sqlite"
    shutil.copyfile(FIXTURES / "renamed.sqlite", path)
    url = f"sqlite:///{path}"
    wrong = await import_emmett(database_url, url, custom_fields=True)
    assert wrong.returncode == 1
    assert "no user table 'auth_users'" in wrong.stderr and "members" in wrong.stderr

    done = await import_emmett(database_url, url, "--user-table", "members", custom_fields=True)
    assert done.returncode == 0, done.stderr
    assert "column members.nickname is no declared custom field" in done.stdout
    running = await start_server(custom_fields=CUSTOM_FIELDS)
    ann = await lookup(running, "ann@example.org")
    assert dict(ann.extra) == {"phone": "+1 555 0100", "karma": 42, "newsletter": True}
    ben = await lookup(running, "ben@example.org")
    assert dict(ben.extra) == {"karma": -3, "newsletter": False}
    assert await member(running, ann.id, "staff")
    assert await allowed(running, "close_tickets", "tickets", "12", user_id=ann.id)
    session = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="Ann@Example.org", password=password_of("ann@x"))
    )
    assert session.session_token


@pytest.mark.postgres_only
async def test_a_postgresql_source(
    start_server: StartServer, database_url: str, postgres_source: str
) -> None:
    done = await import_emmett(database_url, postgres_source, "--skip-conflicts")
    assert done.returncode == 0, done.stderr
    assert "imported: 40 row(s) written" in done.stdout
    assert "password" not in done.stdout.split("\n")[0]  # no credentials in the report
    again = await import_emmett(database_url, postgres_source, "--skip-conflicts")
    assert "nothing to import" in again.stdout
    running = await start_server()
    reply = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=password_of("ada@x"))
    )
    assert await allowed(running, "ban_users", user_id=reply.user.id)
    assert await allowed(running, "write", "Preference", "7", group="editors")
    assert not await allowed(running, "write", "Preference", "8", group="editors")
    erin = await lookup(running, "erin@example.com")
    assert erin.status == resources_pb2.USER_STATUS_DISABLED


@pytest.mark.postgres_only
async def test_a_running_server_sees_the_import_at_once(
    start_server: StartServer, database_url: str, source: Path
) -> None:
    running = await start_server()
    assert not await allowed(running, "write", "Preference", "7", group="editors")  # cached
    done = await import_emmett(database_url, f"sqlite:///{source}", "--skip-conflicts")
    assert done.returncode == 0, done.stderr
    # The import's change notice dropped the cached answer in this other process.
    for _ in range(50):
        if await allowed(running, "write", "Preference", "7", group="editors"):
            break
        await _tick()
    else:
        raise AssertionError("the server kept its answer from before the import")


async def _tick() -> None:
    await asyncio.sleep(0.05)


def _sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.execute(query))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
