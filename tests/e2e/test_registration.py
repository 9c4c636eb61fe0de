"""Registration: validation, uniqueness (also under concurrency) and stored state."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import struct_pb2

from tests.support.rows import table_rows
from tests.support.rpc_errors import details_of
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2


def request(email: str = "ada@example.com", **fields: object) -> auth.RegisterRequest:
    values: dict[str, object] = {
        "email": email,
        "password": "correct horse battery",
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    values.update(fields)
    return auth.RegisterRequest(**values)  # type: ignore[arg-type]


async def invalid_fields(running: Running, message: auth.RegisterRequest) -> dict[str, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await running.auth.Register(message)
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert details.domain == "watchword.auth.v1"
    assert details.error_infos == 1
    return details.violations


def count_users(database_url: str) -> int:
    return len(table_rows(database_url, "users", "id"))


async def test_same_email_in_other_case_is_already_exists(watchword: Running) -> None:
    await watchword.auth.Register(request("Ada@Example.com"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchword.auth.Register(request("ada@EXAMPLE.COM"))
    details = details_of(caught.value)
    assert details.code == grpc.StatusCode.ALREADY_EXISTS
    assert details.reason == "EMAIL_ALREADY_EXISTS"


async def test_short_password_is_a_violation_on_password(watchword: Running) -> None:
    violations = await invalid_fields(watchword, request(password="short"))
    assert set(violations) == {"password"}
    assert "at least 8 characters" in violations["password"]


async def test_password_length_counts_characters_not_bytes(start_server: StartServer) -> None:
    running = await start_server(password_min_length=8)
    # Seven two-byte characters are 14 bytes but still too short.
    violations = await invalid_fields(running, request(password="é" * 7))
    assert set(violations) == {"password"}
    registered = await running.auth.Register(request(password="é" * 8))
    assert registered.user.status == resources_pb2.USER_STATUS_ACTIVE


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com"])
async def test_malformed_email_is_a_violation_on_email(watchword: Running, email: str) -> None:
    violations = await invalid_fields(watchword, request(email))
    assert set(violations) == {"email"}


async def test_missing_fields_are_each_reported(watchword: Running) -> None:
    violations = await invalid_fields(watchword, auth.RegisterRequest())
    assert set(violations) == {"email", "password", "first_name", "last_name"}


async def test_names_may_be_made_optional(start_server: StartServer) -> None:
    running = await start_server(names_required=False)
    registered = await running.auth.Register(
        auth.RegisterRequest(email="ada@example.com", password="correct horse battery")
    )
    assert registered.user.first_name == ""


async def test_undeclared_extra_fields_are_refused(watchword: Running) -> None:
    extra = struct_pb2.Struct()
    extra.update({"nickname": "ada"})
    violations = await invalid_fields(watchword, request(extra=extra))
    assert set(violations) == {"extra.nickname"}


async def test_registration_states_follow_the_settings(start_server: StartServer) -> None:
    verifying = await start_server(registration_verification=True)
    pending = await verifying.auth.Register(request("v@example.com"))
    assert pending.user.status == resources_pb2.USER_STATUS_PENDING_VERIFICATION
    assert pending.session_token == ""
    assert not pending.HasField("expire_time")

    approving = await start_server(registration_approval=True)
    waiting = await approving.auth.Register(request("a@example.com"))
    assert waiting.user.status == resources_pb2.USER_STATUS_PENDING_APPROVAL
    assert waiting.session_token == ""


async def test_a_hundred_concurrent_registrations_are_all_stored(
    watchword: Running, database_url: str
) -> None:
    replies = await asyncio.gather(
        *(watchword.auth.Register(request(f"user{i}@example.com")) for i in range(100))
    )
    assert len({reply.user.id for reply in replies}) == 100
    assert count_users(database_url) == 100


async def test_concurrent_registrations_of_one_email_make_one_account(
    watchword: Running, database_url: str
) -> None:
    results = await asyncio.gather(
        *(watchword.auth.Register(request("same@example.com")) for _ in range(20)),
        return_exceptions=True,
    )
    successes = [r for r in results if isinstance(r, auth.RegisterResponse)]
    failures = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(successes) == 1
    assert len(failures) == 19
    assert {details_of(f).reason for f in failures} == {"EMAIL_ALREADY_EXISTS"}
    assert count_users(database_url) == 1


COMMON = ["password", "12345678", "qwerty123", "Password1", "iloveyou", "sunshine"]


@pytest.mark.parametrize("password", COMMON)
async def test_a_common_password_is_refused_with_a_clear_violation(
    watchword: Running, password: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchword.auth.Register(
            auth.RegisterRequest(
                email="ada@example.com", password=password, first_name="Ada", last_name="L"
            )
        )
    details = details_of(caught.value)
    assert (details.code, details.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert "most common passwords" in details.violations["password"]


@pytest.mark.parametrize(
    "password", ["ada.lovelace@example.com", "ADA.LOVELACE", "Ada Lovelace", "adalovelace"]
)
async def test_the_own_address_or_name_is_refused_as_a_password(
    watchword: Running, password: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await watchword.auth.Register(
            auth.RegisterRequest(
                email="ada.lovelace@example.com",
                password=password,
                first_name="Ada",
                last_name="Lovelace",
            )
        )
    details = details_of(caught.value)
    assert details.violations["password"] == "password must not be the e-mail address or the name"


async def test_the_same_rules_hold_for_a_reset_and_a_change_and_can_be_switched_off(
    start_server: StartServer,
) -> None:
    running = await start_server()
    reply = await running.auth.Register(
        auth.RegisterRequest(
            email="ada@example.com",
            password="correct horse battery",
            first_name="Ada",
            last_name="L",
        )
    )
    for new in ("qwerty123", "ada@example.com"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await running.auth.ChangePassword(
                auth.ChangePasswordRequest(
                    session_token=reply.session_token,
                    old_password="correct horse battery",
                    new_password=new,
                )
            )
        assert "new_password" in details_of(caught.value).violations
    lenient = await start_server(password_refuse_common=False)
    await lenient.auth.Register(
        auth.RegisterRequest(
            email="bob@example.com", password="qwerty123", first_name="Bob", last_name="B"
        )
    )
