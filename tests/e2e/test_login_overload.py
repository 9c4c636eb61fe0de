"""Logins beyond the hashing pool's queue are refused at once, and leave nothing behind.

Password checks are held inside their worker thread (a gate the test opens), so which
calls run, wait or are refused depends on the pool's bound alone, never on timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.support.flows import PASSWORD, register
from tests.support.postgres import connect
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword_server.security.passwords import PasswordHasher


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    retry_delay: int | None
    message: str


def refusal_of(error: grpc.aio.AioRpcError) -> Refusal:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    reason, metadata, delay = "", {}, None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = retry.retry_delay.seconds
    return Refusal(error.code(), reason, metadata, delay, status.message)


@dataclass(frozen=True)
class Gate:
    """Every password check (real or dummy) waits in its thread until ``opened`` is set;
    ``reached`` is set once a check waits there."""

    opened: threading.Event
    reached: threading.Event

    def set(self) -> None:
        self.opened.set()

    async def wait_reached(self) -> None:
        assert await asyncio.to_thread(self.reached.wait, 30), "no password check began"


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    made = Gate(threading.Event(), threading.Event())
    original = PasswordHasher.verify

    def gated(self: PasswordHasher, password: str, stored: str) -> bool:
        made.reached.set()
        made.opened.wait()
        return original(self, password, stored)

    monkeypatch.setattr(PasswordHasher, "verify", gated)
    yield made
    made.set()  # never leave a worker thread hanging


def login(running: Running, email: str, password: str = PASSWORD) -> asyncio.Task[object]:
    return asyncio.ensure_future(
        running.auth.Authenticate(auth.AuthenticateRequest(email=email, password=password))
    )


async def first_finished(tasks: set[asyncio.Task[object]], count: int) -> list[object]:
    """Wait until ``count`` of ``tasks`` are done (removing them); their outcomes."""
    outcomes: list[object] = []
    while len(outcomes) < count:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            tasks.discard(task)
            outcomes.append(task.exception() or task.result())
    return outcomes


def table_counts(database_url: str) -> dict[str, int]:
    with connect(database_url) as conn:
        sessions = conn.execute("SELECT count(*) FROM sessions").fetchone()
        failures = conn.execute("SELECT count(*) FROM login_failures").fetchone()
        rows = conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall()
    kinds: dict[str, int] = {str(kind): int(count) for kind, count in rows}
    assert sessions is not None and failures is not None
    return {
        "sessions": sessions[0],
        "login_failures": failures[0],
        "login_events": kinds.get("login", 0),
        "login_failed_events": kinds.get("login_failed", 0),
    }


@pytest.mark.postgres_only
async def test_a_burst_beyond_the_queue_is_refused_with_a_retry_delay(
    start_server: StartServer, database_url: str, gate: Gate
) -> None:
    running = await start_server(password_hash_threads=1, password_hash_max_waiting=1)
    users = [f"user{i}@example.com" for i in range(6)]
    tokens = [(await register(running, email))[1] for email in users]
    before = table_counts(database_url)

    burst = {login(running, email) for email in users}
    # One check runs (held at the gate), one waits: the four others are refused at once.
    refused = await first_finished(burst, 4)
    assert all(isinstance(outcome, grpc.aio.AioRpcError) for outcome in refused)
    for outcome in refused:
        assert isinstance(outcome, grpc.aio.AioRpcError)
        details = refusal_of(outcome)
        assert (details.code, details.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
        assert details.metadata["retry_after"].isdigit()
        assert details.retry_delay == int(details.metadata["retry_after"]) >= 1
        assert details.message == "The service is busy, try again shortly"

    # Meanwhile the event loop serves everything that needs no hash.
    seen = await running.auth.Introspect(auth.IntrospectRequest(session_token=tokens[0]))
    assert seen.user.email == users[0]
    # Refused attempts left nothing: no session, no event, no failure counted. The two
    # checks under way hold their places among the failures until they are decided.
    assert table_counts(database_url) == {**before, "login_failures": 2}

    gate.set()
    admitted = await first_finished(burst, 2)
    assert all(isinstance(outcome, auth.AuthenticateResponse) for outcome in admitted)
    after = table_counts(database_url)
    assert after == {**before, "sessions": before["sessions"] + 2, "login_events": 2}


@pytest.mark.postgres_only
async def test_unknown_addresses_are_refused_alike_and_no_refusal_counts_as_a_failure(
    start_server: StartServer, database_url: str, gate: Gate
) -> None:
    running = await start_server(
        password_hash_threads=1, password_hash_max_waiting=0, login_max_failures=2
    )
    await register(running, "ada@example.com")
    pending = {login(running, "ada@example.com", "wrong guess")}  # holds the one thread
    await gate.wait_reached()

    answers: dict[str, Refusal] = {}
    for _ in range(3):  # more refusals than the throttle allows failures
        for email in ("ada@example.com", "nobody@example.com"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await running.auth.Authenticate(
                    auth.AuthenticateRequest(email=email, password="wrong guess")
                )
            answers[email] = refusal_of(caught.value)
    known, unknown = answers["ada@example.com"], answers["nobody@example.com"]
    assert known == unknown
    assert (known.code, known.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    assert table_counts(database_url)["login_failures"] == 1  # the check under way's place

    gate.set()
    (held,) = await first_finished(pending, 1)
    assert isinstance(held, grpc.aio.AioRpcError)
    assert refusal_of(held).reason == "INVALID_CREDENTIALS"
    # Only the attempt whose password was checked counts; the account is not locked.
    assert table_counts(database_url)["login_failures"] == 1
    login_reply = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
    )
    assert login_reply.session_token
