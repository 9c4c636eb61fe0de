"""Register, log in, introspect and log out through a real server on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import grpc
import pytest

from tests.support.flows import PASSWORD, register_reply
from tests.support.rows import table_rows
from tests.support.rpc_errors import details_of
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2


async def assert_session_invalid(running: Running, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.UNAUTHENTICATED
    assert details.reason == "SESSION_INVALID"


async def test_register_login_introspect_logout(watchword: Running) -> None:
    registered = await register_reply(watchword)
    assert registered.user.status == resources_pb2.USER_STATUS_ACTIVE
    assert registered.user.email == "ada@example.com"
    assert registered.user.id
    assert registered.session_token

    login = await watchword.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
    )
    assert login.user.id == registered.user.id
    assert login.session_token != registered.session_token

    seen = await watchword.auth.Introspect(
        auth.IntrospectRequest(session_token=login.session_token)
    )
    assert seen.user.id == registered.user.id
    assert seen.user.first_name == "Ada"

    await watchword.auth.Logout(auth.LogoutRequest(session_token=login.session_token))
    await assert_session_invalid(watchword, login.session_token)
    # The registration's own session is independent of the one that logged out.
    await watchword.auth.Introspect(auth.IntrospectRequest(session_token=registered.session_token))


async def test_every_login_gets_a_new_token(watchword: Running) -> None:
    await register_reply(watchword)
    request = auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
    tokens = {(await watchword.auth.Authenticate(request)).session_token for _ in range(3)}
    assert len(tokens) == 3


async def test_login_with_email_in_other_letter_case(watchword: Running) -> None:
    await register_reply(watchword, "Grace.Hopper@Example.com")
    login = await watchword.auth.Authenticate(
        auth.AuthenticateRequest(email="grace.hopper@example.COM", password=PASSWORD)
    )
    assert login.user.email == "Grace.Hopper@Example.com"


async def test_remember_gives_the_long_window(start_server: StartServer) -> None:
    running = await start_server(session_expiration=3600, session_long_expiration=86400)
    await register_reply(running)
    now = running.clock.now().timestamp()

    short = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
    )
    long = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD, remember=True)
    )
    assert short.expire_time.seconds == pytest.approx(now + 3600, abs=1)
    assert long.expire_time.seconds == pytest.approx(now + 86400, abs=1)

    running.clock.advance(3601)
    await assert_session_invalid(running, short.session_token)
    still = await running.auth.Introspect(auth.IntrospectRequest(session_token=long.session_token))
    assert still.user.email == "ada@example.com"


async def test_remember_is_ignored_when_the_option_is_off(start_server: StartServer) -> None:
    running = await start_server(remember_option=False, session_expiration=600)
    await register_reply(running)
    login = await running.auth.Authenticate(
        auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD, remember=True)
    )
    assert login.expire_time.seconds == pytest.approx(running.clock.now().timestamp() + 600, 1)


async def test_window_slides_on_use_and_expires_when_idle(start_server: StartServer) -> None:
    running = await start_server(session_expiration=1000)
    token = (await register_reply(running)).session_token
    for _ in range(5):  # 5 x 600 s = well past one window, but never idle for a whole one
        running.clock.advance(600)
        seen = await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
        assert seen.expire_time.seconds == int(running.clock.now().timestamp()) + 1000
    running.clock.advance(1000)
    await assert_session_invalid(running, token)


async def test_logout_twice_is_session_invalid(watchword: Running) -> None:
    token = (await register_reply(watchword)).session_token
    await watchword.auth.Logout(auth.LogoutRequest(session_token=token))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchword.auth.Logout(auth.LogoutRequest(session_token=token))
    assert details_of(caught.value).reason == "SESSION_INVALID"


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 5000])
async def test_garbage_tokens_are_session_invalid(watchword: Running, token: str) -> None:
    await assert_session_invalid(watchword, token)


def last_seen(database_url: str) -> object:
    [row] = table_rows(database_url, "sessions", "last_seen_time")
    return row["last_seen_time"]


async def test_last_seen_is_written_at_most_every_tenth_of_the_window(
    start_server: StartServer, database_url: str
) -> None:
    running = await start_server(session_expiration=1000)
    token = (await register_reply(running)).session_token
    written = last_seen(database_url)
    # The server writes last uses in batches about once a second; flush them at once here.
    assert running.server.domain is not None
    touches = running.server.domain.touches
    for _ in range(9):  # 9 x 10 s: under a tenth of the window, so no writes
        running.clock.advance(10)
        await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
        await touches.flush()
        assert last_seen(database_url) == written
    running.clock.advance(10)  # now 100 s = a tenth of the window since the last write
    reply = await running.auth.Introspect(auth.IntrospectRequest(session_token=token))
    await touches.flush()
    assert last_seen(database_url) == running.clock.now()
    assert reply.expire_time.ToDatetime(UTC) == running.clock.now() + timedelta(seconds=1000)
