"""Password guessing is throttled per address and per client, without revealing accounts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from tests.support.flows import PASSWORD, register
from tests.support.rpc_errors import ErrorDetails, details_of
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth


async def attempt(
    running: Running, email: str, password: str, client: str = "198.51.100.1"
) -> ErrorDetails | None:
    try:
        await running.auth.Authenticate(
            auth.AuthenticateRequest(email=email, password=password),
            metadata=(("x-forwarded-for", client),),
        )
    except grpc.aio.AioRpcError as error:
        return details_of(error)
    return None


async def test_an_address_is_locked_after_its_failures_and_freed_by_time(
    start_server: StartServer,
) -> None:
    running = await start_server(login_max_failures=3, login_failure_window=600)
    await register(running, "ada@example.com")
    for _ in range(3):
        failed = await attempt(running, "ada@example.com", "wrong guess")
        assert failed is not None and failed.reason == "INVALID_CREDENTIALS"
    locked = await attempt(running, "ADA@example.com", PASSWORD)  # even the right password
    assert locked is not None
    assert (locked.code, locked.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_ATTEMPTS",
    )
    # Other accounts are untouched.
    await register(running, "bob@example.com")
    assert await attempt(running, "bob@example.com", PASSWORD) is None
    running.clock.advance(601)
    assert await attempt(running, "ada@example.com", PASSWORD) is None


async def test_unknown_addresses_are_throttled_alike(start_server: StartServer) -> None:
    running = await start_server(login_max_failures=3)
    await register(running, "ada@example.com")
    answers = {}
    for email in ("ada@example.com", "nobody@example.com"):
        for _ in range(3):
            await attempt(running, email, "wrong guess")
        answers[email] = await attempt(running, email, "wrong guess")
    known, unknown = answers["ada@example.com"], answers["nobody@example.com"]
    assert known is not None and unknown is not None
    assert known.reason == unknown.reason == "TOO_MANY_ATTEMPTS"
    assert known.localized == unknown.localized


async def test_a_correct_password_clears_the_count(start_server: StartServer) -> None:
    running = await start_server(login_max_failures=3)
    await register(running, "ada@example.com")
    for _ in range(5):
        await attempt(running, "ada@example.com", "wrong guess")
        await attempt(running, "ada@example.com", "wrong guess")
        assert await attempt(running, "ada@example.com", PASSWORD) is None


async def test_a_client_guessing_many_addresses_is_throttled(start_server: StartServer) -> None:
    running = await start_server(login_max_failures=100, login_max_failures_per_client=5)
    for i in range(5):
        await attempt(running, f"user{i}@example.com", "guess", client="203.0.113.9")
    refused = await attempt(running, "other@example.com", "guess", client="203.0.113.9")
    assert refused is not None and refused.reason == "TOO_MANY_ATTEMPTS"
    elsewhere = await attempt(running, "other@example.com", "guess", client="203.0.113.10")
    assert elsewhere is not None and elsewhere.reason == "INVALID_CREDENTIALS"


async def test_change_password_guesses_count_too(start_server: StartServer) -> None:
    running = await start_server(login_max_failures=2)
    _, token = await register(running, "ada@example.com")
    request = auth.ChangePasswordRequest(
        session_token=token, old_password="wrong guess", new_password="a new secret"
    )
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running.auth.ChangePassword(request)
        assert details_of(caught.value).reason == "PASSWORD_INCORRECT"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.auth.ChangePassword(request)
    assert details_of(caught.value).reason == "TOO_MANY_ATTEMPTS"


async def _burst(running: Running, emails: list[str], client: str) -> list[str]:
    answers = await asyncio.gather(
        *(attempt(running, email, "wrong guess", client=client) for email in emails)
    )
    assert all(answer is not None for answer in answers)
    return sorted(answer.reason for answer in answers if answer is not None)


@pytest.mark.parametrize("embedded", [False, True], ids=["postgresql", "sqlite"])
async def test_parallel_guesses_are_evaluated_at_most_up_to_the_limit(
    start_server: StartServer, tmp_path: Path, embedded: bool
) -> None:
    # The limit is taken before a password is checked, one attempt at a time: a burst of
    # 50 sees exactly 5 evaluated, for a known address as for an unknown one.
    overrides = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/w.db"} if embedded else {}
    running = await start_server(login_max_failures=5, **overrides)
    await register(running, "ada@example.com")
    for email, client in (
        ("ada@example.com", "198.51.100.1"),
        ("nobody@example.com", "198.51.100.2"),
    ):
        reasons = await _burst(running, [email] * 50, client)
        assert reasons == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"] * 45, email
    # The owner, who knows the password, is locked out for the window like everyone else.
    locked = await attempt(running, "ada@example.com", PASSWORD)
    assert locked is not None and locked.reason == "TOO_MANY_ATTEMPTS"


async def test_parallel_guesses_from_one_client_are_evaluated_at_most_up_to_its_limit(
    start_server: StartServer,
) -> None:
    running = await start_server(login_max_failures=100, login_max_failures_per_client=5)
    emails = [f"user{i}@example.com" for i in range(50)]
    reasons = await _burst(running, emails, "203.0.113.9")
    assert reasons == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"] * 45


async def test_a_correct_password_frees_its_place_for_the_client(start_server: StartServer) -> None:
    # A login that succeeds is no failure: it leaves the client's count as it was.
    running = await start_server(login_max_failures=100, login_max_failures_per_client=3)
    await register(running, "ada@example.com")
    for _ in range(5):
        assert await attempt(running, "ada@example.com", PASSWORD, client="203.0.113.9") is None
    for i in range(3):
        refused = await attempt(running, f"user{i}@example.com", "guess", client="203.0.113.9")
        assert refused is not None and refused.reason == "INVALID_CREDENTIALS"
    refused = await attempt(running, "user9@example.com", "guess", client="203.0.113.9")
    assert refused is not None and refused.reason == "TOO_MANY_ATTEMPTS"
