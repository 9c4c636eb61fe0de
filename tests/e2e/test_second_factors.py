"""The TOTP second factor and its recovery codes, through the running server.

Codes are computed with pyotp from the secret EnrollTotp returns, at the server's clock
(a ManualClock): adjacent time steps stand for clock skew and replays, without sleeping.
"""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import grpc
import pyotp
import pytest

from tests.support.flows import PASSWORD, register
from tests.support.rows import table_rows
from tests.support.rpc_errors import details_of, failure
from tests.support.servers import TEST_PEPPER, Running, StartServer
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2 as resources

EMAIL = "ada@example.com"
TOTP = resources.SECOND_FACTOR_METHOD_TOTP
RECOVERY = resources.SECOND_FACTOR_METHOD_RECOVERY_CODE


def code_at(running: Running, secret: str, steps: int = 0) -> str:
    """The code for the server's current time step, ``steps`` steps away."""
    return pyotp.TOTP(secret).at(running.clock.now() + timedelta(seconds=30 * steps))


async def enrolled(running: Running, token: str) -> tuple[str, list[str]]:
    """Enroll and confirm TOTP (with the current step's code); the secret and codes."""
    enrollment = await running.auth.EnrollTotp(auth.EnrollTotpRequest(session_token=token))
    confirmed = await running.auth.ConfirmTotp(
        auth.ConfirmTotpRequest(session_token=token, code=code_at(running, enrollment.secret))
    )
    return enrollment.secret, list(confirmed.recovery_codes)


async def password_step(running: Running, remember: bool = False) -> auth.AuthenticateResponse:
    reply: auth.AuthenticateResponse = await running.auth.Authenticate(
        auth.AuthenticateRequest(email=EMAIL, password=PASSWORD, remember=remember)
    )
    return reply


def complete(
    running: Running, challenge: str, *, totp: str | None = None, recovery: str | None = None
) -> grpc.aio.UnaryUnaryCall[auth.CompleteSecondFactorRequest, auth.CompleteSecondFactorResponse]:
    request = auth.CompleteSecondFactorRequest(challenge=challenge)
    if totp is not None:
        request.totp_code = totp
    if recovery is not None:
        request.recovery_code = recovery
    return running.auth.CompleteSecondFactor(request)


async def kinds_of(running: Running, user_id: str) -> list[str]:
    listed = await running.admin.ListEvents(admin.ListEventsRequest(user_id=user_id))
    return [resources.EventKind.Name(event.kind) for event in listed.events]


async def test_totp_login_end_to_end_with_skew_replay_and_recovery_codes(
    watchword: Running,
) -> None:
    user_id, token = await register(watchword, EMAIL)
    enrollment = await watchword.auth.EnrollTotp(auth.EnrollTotpRequest(session_token=token))
    assert enrollment.otpauth_uri.startswith("otpauth://totp/Watchword:ada%40example.com?")
    assert f"secret={enrollment.secret}" in enrollment.otpauth_uri
    # Until it is confirmed, the password alone still logs in.
    assert (await password_step(watchword)).session_token
    wrong = await failure(
        watchword.auth.ConfirmTotp(auth.ConfirmTotpRequest(session_token=token, code="000000"))
    )
    assert (wrong.code, wrong.reason) == (grpc.StatusCode.UNAUTHENTICATED, "SECOND_FACTOR_INVALID")
    first = code_at(watchword, enrollment.secret)
    confirmed = await watchword.auth.ConfirmTotp(
        auth.ConfirmTotpRequest(session_token=token, code=first)
    )
    codes = list(confirmed.recovery_codes)
    assert len(codes) == 10 and len(set(codes)) == 10

    started = await password_step(watchword)
    assert started.session_token == ""
    assert started.second_factor_challenge
    assert list(started.second_factor_methods) == [TOTP, RECOVERY]
    # Nothing of the account before the second factor; the challenge's own expiry.
    assert not started.HasField("user")
    assert started.expire_time.ToDatetime(tzinfo=watchword.clock.now().tzinfo) == (
        watchword.clock.now() + timedelta(seconds=300)
    )
    # The code confirmation used is spent: no replay within its window.
    replayed = await failure(complete(watchword, started.second_factor_challenge, totp=first))
    assert (replayed.code, replayed.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SECOND_FACTOR_INVALID",
    )
    # Two steps ahead is beyond the allowed skew; one step ahead (a fast phone) is fine.
    too_far = code_at(watchword, enrollment.secret, 2)
    assert (
        await failure(complete(watchword, started.second_factor_challenge, totp=too_far))
    ).reason == "SECOND_FACTOR_INVALID"
    ahead = code_at(watchword, enrollment.secret, 1)
    done = await complete(watchword, started.second_factor_challenge, totp=ahead)
    assert done.user.id == user_id
    seen = await watchword.auth.Introspect(auth.IntrospectRequest(session_token=done.session_token))
    assert seen.user.id == user_id
    assert done.expire_time.ToDatetime(tzinfo=watchword.clock.now().tzinfo) == (
        watchword.clock.now() + timedelta(seconds=3600)
    )
    # The challenge worked once.
    reused = await failure(complete(watchword, started.second_factor_challenge, totp=ahead))
    assert reused.reason == "SECOND_FACTOR_INVALID"

    # A recovery code instead, and `remember` carried through to the session.
    remembered = await password_step(watchword, remember=True)
    by_code = await complete(
        watchword, remembered.second_factor_challenge, recovery=codes[0].upper()
    )
    assert by_code.expire_time.ToDatetime(tzinfo=watchword.clock.now().tzinfo) == (
        watchword.clock.now() + timedelta(seconds=2_592_000)
    )
    again = await password_step(watchword)
    spent = await failure(complete(watchword, again.second_factor_challenge, recovery=codes[0]))
    assert spent.reason == "SECOND_FACTOR_INVALID"
    assert (
        await complete(watchword, again.second_factor_challenge, recovery=codes[1])
    ).session_token

    kinds = await kinds_of(watchword, user_id)
    for kind in (
        "EVENT_KIND_TOTP_ENROLLMENT_STARTED",
        "EVENT_KIND_TOTP_ENABLED",
        "EVENT_KIND_SECOND_FACTOR_REQUIRED",
        "EVENT_KIND_SECOND_FACTOR_FAILED",
        "EVENT_KIND_RECOVERY_CODE_USED",
        "EVENT_KIND_LOGIN",
    ):
        assert kind in kinds


async def test_an_expired_challenge_is_refused(start_server: StartServer) -> None:
    running = await start_server(second_factor_challenge_ttl=60)
    _, token = await register(running, EMAIL)
    secret, _ = await enrolled(running, token)
    started = await password_step(running)
    running.clock.advance(61)
    expired = await failure(
        complete(running, started.second_factor_challenge, totp=code_at(running, secret))
    )
    assert (expired.code, expired.reason) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "SECOND_FACTOR_INVALID",
    )
    unknown = await failure(complete(running, "not-a-challenge", totp=code_at(running, secret)))
    assert unknown.reason == "SECOND_FACTOR_INVALID"
    missing = await failure(complete(running, started.second_factor_challenge))
    assert missing.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(missing.violations) == {"totp_code"}


async def test_one_code_opens_one_session_however_calls_race(watchword: Running) -> None:
    _, token = await register(watchword, EMAIL)
    secret, _ = await enrolled(watchword, token)
    challenges = [(await password_step(watchword)).second_factor_challenge for _ in range(3)]
    code = code_at(watchword, secret, 1)
    answers = await asyncio.gather(
        *(complete(watchword, challenge, totp=code) for challenge in challenges),
        return_exceptions=True,
    )
    opened = [answer for answer in answers if isinstance(answer, auth.CompleteSecondFactorResponse)]
    refused = [answer for answer in answers if isinstance(answer, grpc.aio.AioRpcError)]
    assert len(opened) == 1 and len(refused) == 2, answers
    assert {details_of(error).reason for error in refused} == {"SECOND_FACTOR_INVALID"}


async def test_recovery_codes_are_offered_while_unused_ones_remain(
    start_server: StartServer,
) -> None:
    running = await start_server(recovery_code_count=1)
    _, token = await register(running, EMAIL)
    _, codes = await enrolled(running, token)
    assert len(codes) == 1
    started = await password_step(running)
    assert list(started.second_factor_methods) == [TOTP, RECOVERY]
    await complete(running, started.second_factor_challenge, recovery=codes[0])
    assert list((await password_step(running)).second_factor_methods) == [TOTP]


async def test_a_slow_clock_is_allowed_one_step(watchword: Running) -> None:
    _, token = await register(watchword, EMAIL)
    secret, _ = await enrolled(watchword, token)
    watchword.clock.advance(90)  # three steps on: the phone's clock lags one step
    started = await password_step(watchword)
    lagging = code_at(watchword, secret, -1)
    assert (await complete(watchword, started.second_factor_challenge, totp=lagging)).session_token
    started = await password_step(watchword)
    two_behind = code_at(watchword, secret, -2)
    refused = await failure(complete(watchword, started.second_factor_challenge, totp=two_behind))
    assert refused.reason == "SECOND_FACTOR_INVALID"


async def test_a_password_change_voids_a_pending_challenge(watchword: Running) -> None:
    _, token = await register(watchword, EMAIL)
    secret, _ = await enrolled(watchword, token)
    started = await password_step(watchword)
    await watchword.auth.ChangePassword(
        auth.ChangePasswordRequest(
            session_token=token, old_password=PASSWORD, new_password="another secret phrase"
        )
    )
    void = await failure(
        complete(watchword, started.second_factor_challenge, totp=code_at(watchword, secret, 1))
    )
    assert void.reason == "SECOND_FACTOR_INVALID"


async def test_wrong_codes_count_toward_the_password_throttle(start_server: StartServer) -> None:
    running = await start_server(login_max_failures=3, login_failure_window=600)
    _, token = await register(running, EMAIL)
    secret, _ = await enrolled(running, token)
    started = await password_step(running)
    for _ in range(2):
        wrong = await failure(complete(running, started.second_factor_challenge, totp="123456"))
        assert wrong.reason == "SECOND_FACTOR_INVALID"
    # A correct password does not clear the count while the second factor is owed.
    started = await password_step(running)
    wrong = await failure(complete(running, started.second_factor_challenge, recovery="nope"))
    assert wrong.reason == "SECOND_FACTOR_INVALID"
    right = code_at(running, secret, 1)
    locked = await failure(complete(running, started.second_factor_challenge, totp=right))
    assert (locked.code, locked.reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_ATTEMPTS",
    )
    password = await failure(password_step(running))
    assert password.reason == "TOO_MANY_ATTEMPTS"  # the same lockout as for passwords
    running.clock.advance(601)
    started = await password_step(running)
    right = code_at(running, secret)
    assert (await complete(running, started.second_factor_challenge, totp=right)).session_token


async def test_wrong_passwords_to_disable_count_toward_the_throttle(
    start_server: StartServer,
) -> None:
    running = await start_server(login_max_failures=2)
    _, token = await register(running, EMAIL)
    await enrolled(running, token)
    request = auth.DisableTotpRequest(session_token=token, password="not the password")
    for _ in range(2):
        assert (await failure(running.auth.DisableTotp(request))).reason == "PASSWORD_INCORRECT"
    right = auth.DisableTotpRequest(session_token=token, password=PASSWORD)
    assert (await failure(running.auth.DisableTotp(right))).reason == "TOO_MANY_ATTEMPTS"


async def test_disable_with_a_code_or_the_password(watchword: Running) -> None:
    user_id, token = await register(watchword, EMAIL)
    secret, codes = await enrolled(watchword, token)
    again = await failure(watchword.auth.EnrollTotp(auth.EnrollTotpRequest(session_token=token)))
    assert (again.code, again.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TOTP_ALREADY_ENABLED",
    )
    bad_password = await failure(
        watchword.auth.DisableTotp(auth.DisableTotpRequest(session_token=token, password="nope"))
    )
    assert (bad_password.code, bad_password.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "PASSWORD_INCORRECT",
    )
    assert set(bad_password.violations) == {"password"}
    neither = await failure(
        watchword.auth.DisableTotp(auth.DisableTotpRequest(session_token=token))
    )
    assert neither.code == grpc.StatusCode.INVALID_ARGUMENT
    await watchword.auth.DisableTotp(
        auth.DisableTotpRequest(session_token=token, code=code_at(watchword, secret, 1))
    )
    assert (await password_step(watchword)).session_token  # the password alone again
    assert table_rows(watchword.server.settings.database_url, "recovery_codes") == []
    not_on = await failure(
        watchword.auth.DisableTotp(auth.DisableTotpRequest(session_token=token, password=PASSWORD))
    )
    assert (not_on.code, not_on.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TOTP_NOT_ENABLED")

    secret, _ = await enrolled(watchword, token)
    pending = await password_step(watchword)
    await watchword.auth.DisableTotp(
        auth.DisableTotpRequest(session_token=token, password=PASSWORD)
    )
    # A challenge issued before is void with the factor it was for.
    void = await failure(
        complete(watchword, pending.second_factor_challenge, totp=code_at(watchword, secret, 1))
    )
    assert void.reason == "SECOND_FACTOR_INVALID"
    assert "EVENT_KIND_TOTP_DISABLED" in await kinds_of(watchword, user_id)


async def test_regenerating_recovery_codes_voids_the_old_set(watchword: Running) -> None:
    user_id, token = await register(watchword, EMAIL)
    secret, old = await enrolled(watchword, token)
    replayed = await failure(
        watchword.auth.RegenerateRecoveryCodes(
            auth.RegenerateRecoveryCodesRequest(
                session_token=token, code=code_at(watchword, secret)
            )
        )
    )
    assert replayed.reason == "SECOND_FACTOR_INVALID"
    new = list(
        (
            await watchword.auth.RegenerateRecoveryCodes(
                auth.RegenerateRecoveryCodesRequest(
                    session_token=token, code=code_at(watchword, secret, 1)
                )
            )
        ).recovery_codes
    )
    assert len(new) == 10 and not set(new) & set(old)
    started = await password_step(watchword)
    voided = await failure(complete(watchword, started.second_factor_challenge, recovery=old[0]))
    assert voided.reason == "SECOND_FACTOR_INVALID"
    assert (
        await complete(watchword, started.second_factor_challenge, recovery=new[0])
    ).session_token
    assert "EVENT_KIND_RECOVERY_CODES_REGENERATED" in await kinds_of(watchword, user_id)


async def test_admin_reads_and_resets_second_factors(watchword: Running) -> None:
    user_id, token = await register(watchword, EMAIL)
    none = await watchword.admin.GetSecondFactors(admin.GetSecondFactorsRequest(user_id=user_id))
    assert list(none.methods) == [] and none.passkey_count == 0
    await enrolled(watchword, token)
    both = await watchword.admin.GetSecondFactors(admin.GetSecondFactorsRequest(user_id=user_id))
    assert list(both.methods) == [TOTP, RECOVERY] and both.passkey_count == 0
    reset = await watchword.admin.ResetSecondFactors(
        admin.ResetSecondFactorsRequest(user_id=user_id)
    )
    assert reset.user.id == user_id
    after = await watchword.admin.GetSecondFactors(admin.GetSecondFactorsRequest(user_id=user_id))
    assert list(after.methods) == []
    assert (await password_step(watchword)).session_token
    listed = await watchword.admin.ListEvents(
        admin.ListEventsRequest(user_id=user_id, kind=resources.EVENT_KIND_SECOND_FACTORS_RESET)
    )
    assert len(listed.events) == 1
    assert listed.events[0].origin.startswith("admin:")
    unknown = await failure(
        watchword.admin.GetSecondFactors(admin.GetSecondFactorsRequest(user_id="nope"))
    )
    assert (unknown.code, unknown.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")


async def test_no_second_factor_secret_is_stored_in_clear(watchword: Running) -> None:
    _, token = await register(watchword, EMAIL)
    secret, codes = await enrolled(watchword, token)
    await password_step(watchword)
    url = watchword.server.settings.database_url
    raw_secret = base64.b32decode(secret)
    for table in ("totp_factors", "recovery_codes", "second_factor_challenges"):
        rows = table_rows(url, table)
        assert rows
        for row in rows:
            for value in row.values():
                blob = value if isinstance(value, bytes) else str(value).encode()
                assert secret.encode() not in blob and raw_secret not in blob
                for code in codes:
                    assert code.encode() not in blob
                    assert code.replace("-", "").encode() not in blob


async def test_the_secret_follows_the_pepper_rotation(start_server: StartServer) -> None:
    first = await start_server()
    _, token = await register(first, EMAIL)
    secret, _ = await enrolled(first, token)
    url = first.server.settings.database_url
    assert [row["key_id"] for row in table_rows(url, "totp_factors")] == ["k1"]
    new_pepper = "a-new-pepper-0123456789abcdef"
    rotated = await start_server(
        hmac_key=new_pepper, hmac_key_id="k2", hmac_retired_keys={"k1": TEST_PEPPER}
    )
    started = await password_step(rotated)
    await complete(rotated, started.second_factor_challenge, totp=code_at(rotated, secret, 1))
    # Used under the retired pepper, it was sealed again under the current one.
    assert [row["key_id"] for row in table_rows(url, "totp_factors")] == ["k2"]
    retired_gone = await start_server(hmac_key=new_pepper, hmac_key_id="k2")
    retired_gone.clock.advance(30)
    started = await password_step(retired_gone)
    done = await complete(
        retired_gone, started.second_factor_challenge, totp=code_at(retired_gone, secret, 1)
    )
    assert done.session_token


@pytest.mark.parametrize(
    "rpc",
    ["EnrollTotp", "ConfirmTotp", "DisableTotp", "RegenerateRecoveryCodes", "CompleteSecondFactor"],
)
async def test_the_new_rpcs_can_be_disabled(start_server: StartServer, rpc: str) -> None:
    running = await start_server(disabled_rpcs=[rpc])
    request = getattr(auth, f"{rpc}Request")()
    refused = await failure(getattr(running.auth, rpc)(request))
    assert (refused.code, refused.reason) == (grpc.StatusCode.UNIMPLEMENTED, "RPC_DISABLED")
