"""Passkeys (WebAuthn) through the running server, with soft-webauthn's software
authenticator: registration, login with a discoverable credential and after naming the
address, and every way an answer is refused (replayed, wrong origin, wrong, used or
expired challenge, a counter gone backwards, no user verification), on both databases."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable

import grpc
import pytest

from tests.support.authenticator import Authenticator, b64url, unb64url
from tests.support.clients import FLAVOURS, open_client
from tests.support.flows import PASSWORD, register
from tests.support.rpc_errors import ErrorDetails, details_of, failure
from tests.support.servers import Running, StartServer
from watchword import Unauthenticated
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2

TTL = 300  # the default webauthn_challenge_ttl


async def add_passkey(
    running: Running, token: str, name: str, device: Authenticator | None = None
) -> tuple[Authenticator, auth.Passkey]:
    device = device or Authenticator()
    begun = await running.auth.BeginPasskeyRegistration(
        auth.BeginPasskeyRegistrationRequest(session_token=token)
    )
    finished = await running.auth.FinishPasskeyRegistration(
        auth.FinishPasskeyRegistrationRequest(
            session_token=token, credential_json=device.register(begun.options_json), name=name
        )
    )
    return device, finished.passkey


async def begin_login(running: Running, email: str = "") -> auth.BeginPasskeyLoginResponse:
    reply: auth.BeginPasskeyLoginResponse = await running.auth.BeginPasskeyLogin(
        auth.BeginPasskeyLoginRequest(email=email)
    )
    return reply


async def finish_login(
    running: Running, challenge: str, credential_json: str, *, client: str = "198.51.100.7"
) -> auth.FinishPasskeyLoginResponse:
    reply: auth.FinishPasskeyLoginResponse = await running.auth.FinishPasskeyLogin(
        auth.FinishPasskeyLoginRequest(challenge=challenge, credential_json=credential_json),
        metadata=(("x-forwarded-for", client),),
    )
    return reply


async def sign_in(running: Running, device: Authenticator, email: str = "") -> str:
    begun = await begin_login(running, email)
    reply = await finish_login(running, begun.challenge, device.sign_in(begun.options_json))
    return str(reply.session_token)


def refused(details: ErrorDetails) -> bool:
    return (details.code, details.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SECOND_FACTOR_INVALID",
    )


async def kinds_of(running: Running, user_id: str) -> list[int]:
    reply = await running.admin.ListEvents(admin.ListEventsRequest(user_id=user_id, page_size=100))
    return [event.kind for event in reply.events]


async def test_two_passkeys_log_in_both_ways_and_are_listed_and_deleted(
    start_server: StartServer,
) -> None:
    running = await start_server()
    user_id, token = await register(running, "ada@example.com")

    begun = await running.auth.BeginPasskeyRegistration(
        auth.BeginPasskeyRegistrationRequest(session_token=token)
    )
    options = json.loads(begun.options_json)
    assert options["rp"] == {"id": "localhost", "name": "Watchword"}
    assert unb64url(options["user"]["id"]) == uuid.UUID(user_id).bytes
    assert options["user"]["name"] == "ada@example.com"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["excludeCredentials"] == []
    laptop = Authenticator()
    first = await running.auth.FinishPasskeyRegistration(
        auth.FinishPasskeyRegistrationRequest(
            session_token=token, credential_json=laptop.register(begun.options_json), name="Laptop"
        )
    )
    assert first.passkey.name == "Laptop" and first.passkey.id
    assert not first.passkey.HasField("last_used_time")

    running.clock.advance(1)  # listed oldest first
    # The second ceremony excludes the first credential, so an authenticator holding it
    # says so instead of registering it again.
    begun = await running.auth.BeginPasskeyRegistration(
        auth.BeginPasskeyRegistrationRequest(session_token=token)
    )
    excluded = [item["id"] for item in json.loads(begun.options_json)["excludeCredentials"]]
    assert excluded == [laptop.credential_b64]
    phone = Authenticator()
    await running.auth.FinishPasskeyRegistration(
        auth.FinishPasskeyRegistrationRequest(
            session_token=token, credential_json=phone.register(begun.options_json), name="Phone"
        )
    )
    listed = await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=token))
    assert [p.name for p in listed.passkeys] == ["Laptop", "Phone"]

    # Discoverable: no address, no credentials named; the passkey alone logs in.
    discoverable = await begin_login(running)
    assert json.loads(discoverable.options_json)["allowCredentials"] == []
    assert json.loads(discoverable.options_json)["userVerification"] == "required"
    assert unb64url(json.loads(discoverable.options_json)["challenge"]) == unb64url(
        discoverable.challenge
    )
    logged_in = await finish_login(
        running, discoverable.challenge, laptop.sign_in(discoverable.options_json)
    )
    assert logged_in.user.id == user_id and logged_in.HasField("expire_time")
    seen = await running.auth.Introspect(
        auth.IntrospectRequest(session_token=logged_in.session_token)
    )
    assert seen.user.email == "ada@example.com"

    # After naming the address, its passkeys are the ones allowed.
    named = await begin_login(running, "ADA@example.com")
    allowed = [item["id"] for item in json.loads(named.options_json)["allowCredentials"]]
    assert sorted(allowed) == sorted([laptop.credential_b64, phone.credential_b64])
    by_phone = await finish_login(running, named.challenge, phone.sign_in(named.options_json))
    assert by_phone.user.id == user_id

    listed = await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=token))
    assert all(p.HasField("last_used_time") for p in listed.passkeys)

    await running.auth.DeletePasskey(
        auth.DeletePasskeyRequest(session_token=token, passkey_id=first.passkey.id)
    )
    listed = await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=token))
    assert [p.name for p in listed.passkeys] == ["Phone"]
    gone = await begin_login(running)
    assert refused(
        await failure(finish_login(running, gone.challenge, laptop.sign_in(gone.options_json)))
    )
    again = await failure(
        running.auth.DeletePasskey(
            auth.DeletePasskeyRequest(session_token=token, passkey_id=first.passkey.id)
        )
    )
    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "PASSKEY_NOT_FOUND")
    # Another user cannot see or delete Ada's passkeys.
    _, bob = await register(running, "bob@example.com")
    mine = await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=bob))
    assert list(mine.passkeys) == []
    not_his = await failure(
        running.auth.DeletePasskey(
            auth.DeletePasskeyRequest(session_token=bob, passkey_id=listed.passkeys[0].id)
        )
    )
    assert not_his.reason == "PASSKEY_NOT_FOUND"

    kinds = await kinds_of(running, user_id)
    assert kinds.count(resources_pb2.EVENT_KIND_PASSKEY_REGISTERED) == 2
    assert kinds.count(resources_pb2.EVENT_KIND_PASSKEY_LOGIN) == 2
    assert kinds.count(resources_pb2.EVENT_KIND_PASSKEY_DELETED) == 1
    # The deleted credential is no one's: its failed login is logged without a user.
    assert kinds.count(resources_pb2.EVENT_KIND_PASSKEY_LOGIN_FAILED) == 0
    failed = await running.admin.ListEvents(
        admin.ListEventsRequest(kind=resources_pb2.EVENT_KIND_PASSKEY_LOGIN_FAILED)
    )
    assert [(e.user_id, e.description) for e in failed.events] == [
        ("", "Failed passkey login for an unknown credential")
    ]


async def test_an_administrator_sees_and_resets_passkeys_with_the_other_factors(
    start_server: StartServer,
) -> None:
    running = await start_server()
    user_id, token = await register(running, "ada@example.com")
    ask = admin.GetSecondFactorsRequest(user_id=user_id)
    none = await running.admin.GetSecondFactors(ask)
    assert (list(none.methods), none.passkey_count) == ([], 0)
    laptop, _ = await add_passkey(running, token, "Laptop")
    await add_passkey(running, token, "Phone")
    two = await running.admin.GetSecondFactors(ask)
    assert (list(two.methods), two.passkey_count) == (
        [resources_pb2.SECOND_FACTOR_METHOD_PASSKEY],
        2,
    )
    # A ceremony under way when the reset comes cannot finish after it.
    begun = await begin_login(running, "ada@example.com")

    await running.admin.ResetSecondFactors(admin.ResetSecondFactorsRequest(user_id=user_id))
    reset = await running.admin.GetSecondFactors(ask)
    assert (list(reset.methods), reset.passkey_count) == ([], 0)
    listed = await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=token))
    assert list(listed.passkeys) == []
    assert refused(
        await failure(finish_login(running, begun.challenge, laptop.sign_in(begun.options_json)))
    )
    assert resources_pb2.EVENT_KIND_SECOND_FACTORS_RESET in await kinds_of(running, user_id)


async def test_replayed_forged_and_stale_answers_are_refused(start_server: StartServer) -> None:
    running = await start_server()
    user_id, token = await register(running, "ada@example.com")
    device, _ = await add_passkey(running, token, "Laptop")

    # Replayed: the same answer to the same challenge works once.
    begun = await begin_login(running)
    answer = device.sign_in(begun.options_json)
    await finish_login(running, begun.challenge, answer)
    assert refused(await failure(finish_login(running, begun.challenge, answer)))

    # Another origin (a phishing site relaying the ceremony) is refused, and the challenge
    # is used up by the attempt: the right answer after it is refused too.
    begun = await begin_login(running)
    phished = device.sign_in(begun.options_json, origin="https://login.example.net")
    assert refused(await failure(finish_login(running, begun.challenge, phished)))
    assert refused(
        await failure(finish_login(running, begun.challenge, device.sign_in(begun.options_json)))
    )

    # An answer to one challenge presented with another.
    first, second = await begin_login(running), await begin_login(running)
    assert refused(
        await failure(finish_login(running, second.challenge, device.sign_in(first.options_json)))
    )
    # A challenge that was never issued.
    assert refused(
        await failure(finish_login(running, "A" * 43, device.sign_in(first.options_json)))
    )

    # Ada's passkey after naming Bob's address, or an unknown one; an answer claiming
    # another user handle.
    await register(running, "bob@example.com")
    begun = await begin_login(running, "bob@example.com")
    assert refused(
        await failure(finish_login(running, begun.challenge, device.sign_in(begun.options_json)))
    )
    begun = await begin_login(running, "nobody@example.com")
    assert refused(
        await failure(finish_login(running, begun.challenge, device.sign_in(begun.options_json)))
    )
    begun = await begin_login(running)
    claimed = json.loads(device.sign_in(begun.options_json))
    claimed["response"]["userHandle"] = b64url(uuid.uuid4().bytes)
    assert refused(await failure(finish_login(running, begun.challenge, json.dumps(claimed))))

    # Expired: answered after webauthn_challenge_ttl.
    begun = await begin_login(running)
    running.clock.advance(TTL + 1)
    assert refused(
        await failure(finish_login(running, begun.challenge, device.sign_in(begun.options_json)))
    )

    # A signature counter that went backwards: a cloned authenticator.
    device.sign_count = 0
    begun = await begin_login(running)
    assert refused(
        await failure(finish_login(running, begun.challenge, device.sign_in(begun.options_json)))
    )
    device.sign_count = 100

    # No user verification: presence alone does not make a login.
    device.verifies_user = False
    begun = await begin_login(running)
    assert refused(
        await failure(finish_login(running, begun.challenge, device.sign_in(begun.options_json)))
    )
    device.verifies_user = True
    await sign_in(running, device)  # and the passkey still works

    kinds = await kinds_of(running, user_id)
    assert kinds.count(resources_pb2.EVENT_KIND_PASSKEY_LOGIN_FAILED) == 11
    assert kinds.count(resources_pb2.EVENT_KIND_PASSKEY_LOGIN) == 2


async def test_registration_refuses_stale_foreign_and_repeated_credentials(
    start_server: StartServer,
) -> None:
    running = await start_server()
    _, token = await register(running, "ada@example.com")
    _, bob = await register(running, "bob@example.com")

    def finish(session: str, credential_json: str) -> Awaitable[object]:
        return running.auth.FinishPasskeyRegistration(
            auth.FinishPasskeyRegistrationRequest(
                session_token=session, credential_json=credential_json, name="Key"
            )
        )

    async def options(session: str) -> str:
        begun = await running.auth.BeginPasskeyRegistration(
            auth.BeginPasskeyRegistrationRequest(session_token=session)
        )
        return str(begun.options_json)

    # Expired, and then used: the challenge is gone.
    device = Authenticator()
    created = device.register(await options(token))
    running.clock.advance(TTL + 1)
    assert refused(await failure(finish(token, created)))
    assert refused(await failure(finish(token, created)))
    # Another user's ceremony cannot be finished in this session.
    assert refused(await failure(finish(bob, device.register(await options(token)))))
    # Another origin; no user verification.
    wrong = device.register(await options(token), origin="https://login.example.net")
    assert refused(await failure(finish(token, wrong)))
    device.verifies_user = False
    assert refused(await failure(finish(token, device.register(await options(token)))))
    device.verifies_user = True

    # A credential id longer than WebAuthn allows (1023 bytes).
    long_id = Authenticator()
    long_id.register(await options(token))
    long_id.credential_id = b"\x01" * 1024
    assert refused(await failure(finish(token, long_id.register(await options(token), again=True))))

    await finish(token, device.register(await options(token)))
    # The same credential once more, for Ada or for Bob, past the exclusion list.
    for session in (token, bob):
        taken = await failure(finish(session, device.register(await options(session), again=True)))
        assert (taken.code, taken.reason) == (
            grpc.StatusCode.ALREADY_EXISTS,
            "PASSKEY_ALREADY_REGISTERED",
        )
    listed = await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=token))
    assert len(listed.passkeys) == 1


async def test_account_checks_and_the_throttle_apply_as_to_passwords(
    start_server: StartServer,
) -> None:
    running = await start_server(login_max_failures=3)
    ada_id, token = await register(running, "ada@example.com")
    device, _ = await add_passkey(running, token, "Laptop")

    # Three failed passkey logins for Ada's address lock it, for passwords too.
    for _ in range(3):
        begun = await begin_login(running, "ada@example.com")
        wrong = device.sign_in(begun.options_json, origin="https://login.example.net")
        assert refused(await failure(finish_login(running, begun.challenge, wrong)))
    begun = await begin_login(running, "ada@example.com")
    locked = await failure(
        finish_login(running, begun.challenge, device.sign_in(begun.options_json))
    )
    assert (locked.code, locked.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_ATTEMPTS")
    by_password = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
    )
    assert by_password.reason == "TOO_MANY_ATTEMPTS"
    # Discoverable logins count against the credential's owner as well.
    running.clock.advance(901)
    await sign_in(running, device)  # a success clears the count

    # A blocked user is refused as Authenticate refuses: after the passkey verified.
    await running.admin.BlockUser(admin.BlockUserRequest(user_id=ada_id))
    blocked = await failure(sign_in(running, device))
    assert (blocked.code, blocked.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ACCOUNT_BLOCKED",
    )
    await running.admin.AllowUser(admin.AllowUserRequest(user_id=ada_id))
    assert await sign_in(running, device)


async def test_unknown_address_and_address_without_passkeys_look_alike(
    start_server: StartServer,
) -> None:
    running = await start_server()
    await register(running, "ada@example.com")
    answers = []
    for email in ("ada@example.com", "nobody@example.com"):
        begun = await begin_login(running, email)
        options = json.loads(begun.options_json)
        del options["challenge"]
        answers.append(options)
        device = Authenticator()
        device.cred_init("localhost", b"someone")
        failed = await failure(
            finish_login(running, begun.challenge, device.sign_in(begun.options_json))
        )
        assert refused(failed)
        answers.append(failed.localized)
    assert answers[0] == answers[2] and answers[1] == answers[3]


async def test_bad_requests_get_field_violations(start_server: StartServer) -> None:
    running = await start_server()
    _, token = await register(running, "ada@example.com")
    bad = await failure(
        running.auth.FinishPasskeyRegistration(
            auth.FinishPasskeyRegistrationRequest(
                session_token=token, credential_json="not json", name=""
            )
        )
    )
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad.violations) == {"name"}  # the name first: nothing else is read
    bad = await failure(
        running.auth.FinishPasskeyRegistration(
            auth.FinishPasskeyRegistrationRequest(
                session_token=token, credential_json="{}", name="Key"
            )
        )
    )
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT and set(bad.violations) == {
        "credential_json"
    }
    bad = await failure(finish_login(running, "", ""))
    assert set(bad.violations) == {"challenge", "credential_json"}
    bad = await failure(begin_login(running, "not an address\x00"))
    assert set(bad.violations) == {"email"}
    for call in (
        running.auth.BeginPasskeyRegistration(
            auth.BeginPasskeyRegistrationRequest(session_token="nope")
        ),
        running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token="nope")),
        running.auth.DeletePasskey(auth.DeletePasskeyRequest(session_token="nope", passkey_id="x")),
    ):
        assert (await failure(call)).reason == "SESSION_INVALID"
    bad_id = await failure(
        running.auth.DeletePasskey(auth.DeletePasskeyRequest(session_token=token, passkey_id="x"))
    )
    assert bad_id.reason == "PASSKEY_NOT_FOUND"


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_the_python_clients_carry_the_ceremonies(
    start_server: StartServer, flavour: str
) -> None:
    running = await start_server()
    client = await open_client(flavour, running.address)
    try:
        registered = await client.register(
            email="ada@example.com", password=PASSWORD, first_name="Ada", last_name="L"
        )
        token = registered.session_token
        device = Authenticator()
        options = await client.begin_passkey_registration(session_token=token)
        passkey = await client.finish_passkey_registration(
            session_token=token, credential_json=device.register(options), name="Laptop"
        )
        begun = await client.begin_passkey_login()
        answer = device.sign_in(begun.options_json)
        login = await client.finish_passkey_login(
            challenge=begun.challenge, credential_json=answer, remember=True
        )
        assert login.user.email == "ada@example.com"
        lifetime = login.expire_time.ToDatetime(tzinfo=running.clock.now().tzinfo)
        assert (lifetime - running.clock.now()).total_seconds() == 2_592_000  # remembered
        mine = await client.list_passkeys(session_token=login.session_token)
        assert [p.id for p in mine] == [passkey.id]
        with pytest.raises(Unauthenticated) as replayed:
            await client.finish_passkey_login(challenge=begun.challenge, credential_json=answer)
        assert replayed.value.reason == "SECOND_FACTOR_INVALID"
        named = await client.begin_passkey_login(email="ada@example.com")
        assert device.credential_b64 in named.options_json
        await client.delete_passkey(session_token=token, passkey_id=passkey.id)
        assert await client.list_passkeys(session_token=token) == []
    finally:
        await client.close()


async def test_the_passkey_rpcs_can_be_disabled(start_server: StartServer) -> None:
    running = await start_server(disabled_rpcs=["BeginPasskeyLogin", "FinishPasskeyLogin"])
    off = await failure(begin_login(running))
    assert (off.code, off.reason) == (grpc.StatusCode.UNIMPLEMENTED, "RPC_DISABLED")
    _, token = await register(running, "ada@example.com")
    await running.auth.ListPasskeys(auth.ListPasskeysRequest(session_token=token))


async def test_one_answer_sent_twice_at_once_logs_in_once(start_server: StartServer) -> None:
    running = await start_server()
    _, token = await register(running, "ada@example.com")
    device, _ = await add_passkey(running, token, "Laptop")
    begun = await begin_login(running)
    answer = device.sign_in(begun.options_json)
    outcomes = await asyncio.gather(
        *(finish_login(running, begun.challenge, answer) for _ in range(4)),
        return_exceptions=True,
    )
    logged_in = [o for o in outcomes if isinstance(o, auth.FinishPasskeyLoginResponse)]
    assert len(logged_in) == 1
    for outcome in outcomes:
        if not isinstance(outcome, auth.FinishPasskeyLoginResponse):
            assert isinstance(outcome, grpc.aio.AioRpcError)
            assert refused(details_of(outcome))
