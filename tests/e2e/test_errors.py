"""Every failure is a rich status: one ErrorInfo, field violations, the configured text."""

from __future__ import annotations

import grpc
import pytest

from tests.support.rpc_errors import details_of
from tests.support.servers import StartServer
from watchword.auth.v1 import auth_service_pb2 as auth


async def test_configured_message_text_is_in_the_error(start_server: StartServer) -> None:
    running = await start_server(messages={"login_invalid": "Wrong e-mail or password, sorry"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.auth.Authenticate(
            auth.AuthenticateRequest(email="nobody@example.com", password="whatever!")
        )
    details = details_of(caught.value)
    assert details.localized == "Wrong e-mail or password, sorry"
    assert caught.value.details() == "Wrong e-mail or password, sorry"
    assert details.error_infos == 1
    assert details.domain == "watchword.auth.v1"


async def test_disabled_rpcs_answer_unimplemented(start_server: StartServer) -> None:
    running = await start_server(disabled_rpcs=["Register"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.auth.Register(
            auth.RegisterRequest(
                email="ada@example.com", password="correct horse", first_name="A", last_name="B"
            )
        )
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.UNIMPLEMENTED
    assert details.reason == "RPC_DISABLED"
    # Other RPCs are untouched.
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await running.auth.Introspect(auth.IntrospectRequest(session_token="nope"))
    assert details_of(other.value).reason == "SESSION_INVALID"


async def test_an_unknown_disabled_rpc_stops_the_start(database_url: str) -> None:
    from tests.support.clock import ManualClock
    from tests.support.servers import settings_for
    from watchword_server.app import StartupError, WatchwordServer

    server = WatchwordServer(
        settings_for(database_url, disabled_rpcs=["PasswordRetrieval"]), clock=ManualClock()
    )
    with pytest.raises(StartupError, match="PasswordRetrieval"):
        await server.start()
    await server.stop(0)


async def test_the_localized_message_is_exactly_the_configured_text(
    start_server: StartServer,
) -> None:
    # Developer detail (which field, why) belongs in Status.message and the field
    # violations, never in the text an application shows its users.
    configured = "Ce lien ne marche plus"
    running = await start_server(messages={"reset_key_invalid": configured})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.auth.ResetPassword(
            auth.ResetPasswordRequest(reset_key="not-a-key", new_password="a new secret")
        )
    details = details_of(caught.value)
    assert details.reason == "RESET_KEY_INVALID"
    assert details.localized == configured
    message = caught.value.details() or ""
    assert message.startswith(configured) and "reset_key" in message
    assert set(details.violations) == {"reset_key"}
