"""Embedding (docs/embedding.md): our services on an application's own grpc.aio server,
the application's services beside ours on WatchwordServer, and the hooks that may refuse
a registration, a login or a password change."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from tests.support.authenticator import Authenticator
from tests.support.clients import FLAVOURS, open_client
from tests.support.flows import PASSWORD, login, register, register_reply
from tests.support.metadata import bearer_interceptors
from tests.support.rpc_errors import details_of, failure
from tests.support.servers import Running, StartServer, settings_for
from tests.support.smtp import SmtpServer, key_of, smtp_settings
from watchword import FailedPrecondition
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import admin_service_pb2_grpc, auth_service_pb2_grpc, resources_pb2
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword_server.domain.access.service_keys import Scope
from watchword_server.embedding import (
    Hooks,
    LoginAttempt,
    PasswordChangeAttempt,
    Refused,
    RegisterAttempt,
    StartupError,
    serve_within,
)

GREETER = "example.Greeter"
HELLO = f"/{GREETER}/Hello"


def add_greeter(server: grpc.aio.Server) -> None:
    """The application's own service: bytes in, bytes out (no proto needed)."""

    async def hello(request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return b"hello " + request

    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(hello)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(GREETER, {"Hello": handler}),)
    )


async def greet(channel: grpc.aio.Channel, name: bytes) -> bytes:
    return await channel_call(channel, HELLO, name)


async def listed_services(channel: grpc.aio.Channel) -> set[str]:
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    [reply] = [
        r async for r in call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    ]
    return {service.name for service in reply.list_services_response.service}


async def test_an_applications_server_serves_its_service_and_ours_on_one_port(
    database_url: str,
) -> None:
    server = grpc.aio.server()
    add_greeter(server)
    settings = settings_for(database_url)
    async with serve_within(server, settings, reflected_services=[GREETER]) as watchword:
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        assert watchword.service_keys is not None
        admin_key = await watchword.service_keys.create("embedding-admin", Scope.ADMIN)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        keyed = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=bearer_interceptors(admin_key)
        )
        stub = auth_service_pb2_grpc.AuthServiceStub(channel)
        reply = await stub.Register(
            auth.RegisterRequest(
                email="ada@example.com", password=PASSWORD, first_name="Ada", last_name="L"
            )
        )
        assert reply.session_token
        assert await greet(channel, b"ada") == b"hello ada"
        users = await admin_service_pb2_grpc.AdminServiceStub(keyed).ListUsers(
            admin.ListUsersRequest()
        )
        assert [user.email for user in users.users] == ["ada@example.com"]
        # Our RPC wrapping on the application's server: errors are rich statuses.
        wrong = await failure(
            stub.Authenticate(auth.AuthenticateRequest(email="ada@example.com", password="no"))
        )
        assert (wrong.code, wrong.reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "INVALID_CREDENTIALS",
        )
        health: Any = health_pb2_grpc.HealthStub(channel)
        for service in ("", "watchword.auth.v1.AuthService"):
            status = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
        assert {GREETER, "watchword.auth.v1.AuthService", "grpc.health.v1.Health"} <= (
            await listed_services(channel)
        )
    # Leaving the block stops our domain, not the application's server.
    assert await greet(channel, b"again") == b"hello again"
    await keyed.close(None)
    await channel.close(None)
    await server.stop(0)


async def test_an_application_with_its_own_health_and_reflection_gets_only_our_services(
    database_url: str,
) -> None:
    server = grpc.aio.server()
    async with serve_within(server, settings_for(database_url), standard_services=False):
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health: Any = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as missing:
                await health.Check(health_pb2.HealthCheckRequest())
            assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED
            stub = auth_service_pb2_grpc.AuthServiceStub(channel)
            await stub.Register(
                auth.RegisterRequest(
                    email="ada@example.com", password=PASSWORD, first_name="A", last_name="L"
                )
            )
        await server.stop(0)


async def test_extra_services_are_served_beside_ours_by_watchword_server(
    start_server: StartServer,
) -> None:
    running = await start_server(extra_services=[add_greeter], reflected_services=[GREETER])
    assert await greet(running.channel, b"bob") == b"hello bob"
    await register(running, "bob@example.com")
    assert await login(running, "bob@example.com")
    assert GREETER in await listed_services(running.channel)
    # Ours are still ours: a method the application's service lacks is not found there.
    unknown = channel_call(running.channel, f"/{GREETER}/Goodbye", b"")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await unknown
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def channel_call(channel: grpc.aio.Channel, method: str, body: bytes) -> Awaitable[bytes]:
    # No serializers: the body goes and comes back as bytes.
    multicallable: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    return multicallable(body)


async def user_count(running: Running) -> int:
    return len((await running.admin.ListUsers(admin.ListUsersRequest())).users)


async def test_a_register_hook_refuses_with_its_message_and_allows_the_rest(
    start_server: StartServer,
) -> None:
    seen: list[RegisterAttempt] = []

    def only_example_org(attempt: RegisterAttempt) -> None:
        seen.append(attempt)
        if not attempt.email.endswith("@example.org"):
            raise Refused(
                "Sign-ups are open to example.org only",
                reason="DOMAIN_NOT_ALLOWED",
                domain="shop.example.org",
            )

    running = await start_server(hooks=Hooks(before_register=only_example_org))
    refused = await failure(
        running.auth.Register(
            auth.RegisterRequest(
                email="eve@example.com", password=PASSWORD, first_name="Eve", last_name="E"
            )
        )
    )
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (refused.reason, refused.domain) == ("DOMAIN_NOT_ALLOWED", "shop.example.org")
    assert refused.localized == "Sign-ups are open to example.org only"
    assert refused.error_infos == 1
    # The Python clients carry the application's reason and domain as they are.
    for flavour in FLAVOURS:
        client = await open_client(flavour, running.address)
        with pytest.raises(FailedPrecondition) as raised:
            await client.register(
                email="eve@example.com", password=PASSWORD, first_name="E", last_name="E"
            )
        await client.close()
        error = raised.value
        assert (error.reason, error.domain) == ("DOMAIN_NOT_ALLOWED", "shop.example.org")
        assert error.message == "Sign-ups are open to example.org only"
        assert error.metadata == {"hook": "before_register"}
    assert await user_count(running) == 0

    allowed = await register_reply(running, "ada@example.org", extra=None)
    assert allowed.session_token
    assert await user_count(running) == 1
    first, *_, last = seen
    assert (first.email, first.first_name, first.last_name) == ("eve@example.com", "Eve", "E")
    assert first.client_ip == "127.0.0.1"
    assert last.email == "ada@example.org"
    # A hook is given no password (one that logged its argument would write it out).
    assert PASSWORD not in repr(seen)


async def test_a_register_hook_refusal_tells_nothing_of_who_has_an_account(
    start_server: StartServer,
) -> None:
    def closed(_attempt: RegisterAttempt) -> None:
        raise Refused("Sign-ups are closed")

    open_server = await start_server()
    await register(open_server, "ada@example.com")
    running = await start_server(hooks=Hooks(before_register=closed))
    for email in ("ada@example.com", "new@example.com"):
        refused = await failure(
            running.auth.Register(
                auth.RegisterRequest(email=email, password=PASSWORD, first_name="A", last_name="L")
            )
        )
        # The defaults: reason REFUSED in the "application" domain.
        assert (refused.code, refused.reason, refused.domain) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "REFUSED",
            "application",
        )
        assert refused.localized == "Sign-ups are closed"


async def test_a_login_hook_runs_after_a_right_password_and_may_refuse(
    start_server: StartServer,
) -> None:
    seen: list[LoginAttempt] = []

    async def no_bob(attempt: LoginAttempt) -> None:
        seen.append(attempt)
        if attempt.user.email == "bob@example.com":
            raise Refused("Bob is on holiday", reason="ON_HOLIDAY", domain="example.com")

    running = await start_server(hooks=Hooks(before_login=no_bob))
    await register(running, "ada@example.com")
    await register(running, "bob@example.com")
    # A wrong password is answered as ever, without asking the hook.
    wrong = await failure(
        running.auth.Authenticate(auth.AuthenticateRequest(email="bob@example.com", password="x"))
    )
    assert wrong.reason == "INVALID_CREDENTIALS"
    assert seen == []
    refused = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="bob@example.com", password=PASSWORD, remember=True)
        )
    )
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ON_HOLIDAY")
    assert refused.localized == "Bob is on holiday"
    [attempt] = seen
    assert attempt.user.email == "bob@example.com" and attempt.remember
    assert PASSWORD not in repr(attempt)
    # No session, no login event for bob; ada logs in.
    events = await running.admin.ListEvents(
        admin.ListEventsRequest(kind=resources_pb2.EVENT_KIND_LOGIN)
    )
    assert list(events.events) == []
    assert await login(running, "ada@example.com")
    events = await running.admin.ListEvents(
        admin.ListEventsRequest(kind=resources_pb2.EVENT_KIND_LOGIN)
    )
    assert len(events.events) == 1


async def test_a_login_hook_is_asked_before_a_passkey_login_too(
    start_server: StartServer,
) -> None:
    refusing = True

    def gate(attempt: LoginAttempt) -> None:
        if refusing:
            raise Refused(f"Not now, {attempt.user.first_name}", reason="NOT_NOW")

    running = await start_server(hooks=Hooks(before_login=gate))
    _, token = await register(running, "ada@example.com")  # Register logs in: no hook
    device = Authenticator()
    begun = await running.auth.BeginPasskeyRegistration(
        auth.BeginPasskeyRegistrationRequest(session_token=token)
    )
    await running.auth.FinishPasskeyRegistration(
        auth.FinishPasskeyRegistrationRequest(
            session_token=token, credential_json=device.register(begun.options_json), name="Key"
        )
    )

    async def sign_in() -> auth.FinishPasskeyLoginResponse:
        begun = await running.auth.BeginPasskeyLogin(auth.BeginPasskeyLoginRequest())
        reply: auth.FinishPasskeyLoginResponse = await running.auth.FinishPasskeyLogin(
            auth.FinishPasskeyLoginRequest(
                challenge=begun.challenge, credential_json=device.sign_in(begun.options_json)
            )
        )
        return reply

    refused = await failure(sign_in())
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NOT_NOW")
    assert refused.localized == "Not now, A"
    refusing = False
    assert (await sign_in()).session_token


async def test_a_password_change_hook_may_refuse_a_change_and_a_reset(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    seen: list[PasswordChangeAttempt] = []
    refusing = True

    def frozen(attempt: PasswordChangeAttempt) -> None:
        seen.append(attempt)
        if refusing:
            raise Refused("Passwords are frozen during the audit", reason="FROZEN")

    running = await start_server(hooks=Hooks(before_password_change=frozen), **smtp_settings(smtp))
    _, session = await register(running, "ada@example.com")
    change = auth.ChangePasswordRequest(
        session_token=session, old_password=PASSWORD, new_password="a new long secret"
    )
    refused = await failure(running.auth.ChangePassword(change))
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "FROZEN")
    assert refused.localized == "Passwords are frozen during the audit"
    assert await login(running, "ada@example.com")  # the old password still works

    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ada@example.com")
    )
    [mail] = await smtp.wait_for(1)
    reset = auth.ResetPasswordRequest(reset_key=key_of(mail), new_password="a reset secret")
    refused = await failure(running.auth.ResetPassword(reset))
    assert refused.reason == "FROZEN"
    assert await login(running, "ada@example.com")
    assert [(a.kind, a.user.email) for a in seen] == [
        ("change", "ada@example.com"),
        ("reset", "ada@example.com"),
    ]
    assert PASSWORD not in repr(seen) and "secret" not in repr(seen)

    refusing = False  # a refused reset used up nothing: its key still works
    await running.auth.ResetPassword(reset)
    assert await login(running, "ada@example.com", "a reset secret")
    fresh = await login(running, "ada@example.com", "a reset secret")
    await running.auth.ChangePassword(
        auth.ChangePasswordRequest(
            session_token=fresh, old_password="a reset secret", new_password="the final secret"
        )
    )
    assert await login(running, "ada@example.com", "the final secret")


async def test_a_crashing_hook_fails_closed_with_unavailable_and_is_logged(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_attempt: object) -> None:
        raise KeyError("the policy service's secret detail")

    running = await start_server(
        hooks=Hooks(before_register=broken, before_login=broken, before_password_change=broken)
    )
    with caplog.at_level(logging.ERROR, logger="watchword_server.domain.accounts.hooks"):
        try:
            await running.auth.Register(
                auth.RegisterRequest(
                    email="a@example.com", password=PASSWORD, first_name="A", last_name="L"
                )
            )
        except grpc.aio.AioRpcError as error:
            failed = details_of(error)
            text = error.details() or ""
        else:
            raise AssertionError("the call succeeded")
    assert failed.code == grpc.StatusCode.UNAVAILABLE
    assert (failed.reason, failed.domain) == ("HOOK_FAILED", "watchword.hooks")
    assert failed.localized == "This cannot be done right now; please try again later"
    assert "secret detail" not in text and "KeyError" not in text
    assert await user_count(running) == 0  # nothing was done
    [record] = [r for r in caplog.records if "before_register" in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError

    # The same for a login: the right password, then the broken hook; no session.
    ok = await start_server()
    await register(ok, "b@example.com")
    running = await start_server(hooks=Hooks(before_login=broken))
    failed = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="b@example.com", password=PASSWORD)
        )
    )
    assert (failed.code, failed.reason) == (grpc.StatusCode.UNAVAILABLE, "HOOK_FAILED")


async def test_serve_within_refuses_to_start_on_bad_settings_and_closes_what_it_opened(
    database_url: str,
) -> None:
    server = grpc.aio.server()
    settings = settings_for(database_url, disabled_rpcs=["NoSuchRpc"])
    with pytest.raises(StartupError, match="NoSuchRpc"):
        async with serve_within(server, settings):
            raise AssertionError("entered the block")
    await server.stop(0)
