"""The benchmark's h2load driver refuses runs whose calls failed, whatever their speed.

Against the test server (in this process, so the blocking driver runs in a thread).
"""

from __future__ import annotations

import asyncio

import pytest

from bench import calls
from bench.h2load import Answer, Call, H2loadError, Load, run, start
from bench.stage import SessionTally
from tests.support.flows import PASSWORD, register
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import auth_service_pb2 as auth

_SHORT = 0.2


async def test_a_run_of_expected_answers_is_measured(watchword: Running) -> None:
    health = await asyncio.to_thread(calls.health, watchword.address)

    measured = await asyncio.to_thread(
        run, watchword.address, health, load=Load(streams=4), duration=_SHORT
    )

    assert measured.requests > 0
    assert len(measured.latencies_ms) == measured.requests
    assert 0 < measured.p50 <= measured.p99


async def test_error_answers_are_refused(watchword: Running) -> None:
    user_id, _ = await register(watchword, "ada@example.com")
    check = await asyncio.to_thread(
        calls.has_permission, watchword.address, watchword.access_key, user_id
    )
    # Trailers-only UNAUTHENTICATED answers: no DATA at all.
    unkeyed = Call(check.method, check.request, check.answer, {"authorization": "Bearer nope"})

    with pytest.raises(H2loadError, match="some calls failed"):
        await asyncio.to_thread(run, watchword.address, unkeyed, load=Load(), duration=_SHORT)


async def test_other_answers_are_refused(watchword: Running) -> None:
    user_id, _ = await register(watchword, "ada@example.com")
    check = await asyncio.to_thread(
        calls.has_permission, watchword.address, watchword.access_key, user_id
    )
    # The user holds no grant: expecting "allowed" must fail though every call succeeds.
    assert isinstance(check.request, access.HasPermissionRequest)
    denied = await watchword.access.HasPermission(check.request)
    assert not denied.allowed
    allowed = access.HasPermissionResponse(allowed=True, revision=denied.revision)
    expecting_allowed = Call(check.method, check.request, Answer.exactly(allowed), check.metadata)

    with pytest.raises(H2loadError, match="got another answer"):
        await asyncio.to_thread(
            run, watchword.address, expecting_allowed, load=Load(), duration=_SHORT
        )


async def test_failed_logins_are_refused_by_the_session_count(
    watchword: Running, database_url: str
) -> None:
    await register(watchword, "ada@example.com")
    login = await asyncio.to_thread(
        calls.authenticate, watchword.address, "ada@example.com", PASSWORD
    )
    wrong = auth.AuthenticateRequest(email="ada@example.com", password="not the password")
    failing = Call(login.method, wrong, login.answer)
    tally = SessionTally(database_url)

    good = await asyncio.to_thread(
        run, watchword.address, login, load=Load(streams=2), requests=4, tally=tally
    )
    assert good.requests == 4
    with pytest.raises(H2loadError):
        await asyncio.to_thread(
            run, watchword.address, failing, load=Load(streams=2), requests=4, tally=tally
        )


def test_answers_of_varying_size_need_a_counted_run_and_a_tally() -> None:
    varying = Call("/x.Y/Z", auth.AuthenticateRequest(), Answer(10, 12))

    with pytest.raises(ValueError, match="vary in size"):
        start("127.0.0.1:1", varying, load=Load(), duration=1.0)
    with pytest.raises(ValueError, match="vary in size"):
        start("127.0.0.1:1", varying, load=Load(), requests=10)
