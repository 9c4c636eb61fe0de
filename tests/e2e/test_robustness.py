"""Edge cases found in review: bad JSON values, oversized echoes, expired sessions,
unknown enum filters, forged client addresses, and keys mailed to a replaced address."""

from __future__ import annotations

import math
import re
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2

from tests.support.flows import PASSWORD, register
from tests.support.postgres import connect
from tests.support.rpc_errors import failure
from tests.support.servers import Running, StartServer
from tests.support.smtp import SmtpServer, smtp_settings
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(values)
    return result


@pytest.mark.parametrize(
    "extra",
    [{"n": math.nan}, {"n": math.inf}, {"k": "a\x00b"}, {"\x00": 1}, {"big": "x" * 20_000}],
    ids=["nan", "inf", "nul-value", "nul-key", "too-big"],
)
async def test_bad_json_values_are_invalid_argument(
    watchword: Running, extra: dict[str, Any]
) -> None:
    for call in (
        watchword.admin.CreateGroup(
            admin.CreateGroupRequest(group=resources_pb2.Group(name="g", extra=struct(extra)))
        ),
        watchword.auth.Register(
            auth.RegisterRequest(
                email="ada@example.com",
                password=PASSWORD,
                first_name="A",
                last_name="B",
                extra=struct(extra),
            )
        ),
    ):
        details = await failure(call)
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.error_infos == 1


async def test_huge_echoed_input_still_gets_a_rich_status(watchword: Running) -> None:
    details = await failure(
        watchword.auth.Register(
            auth.RegisterRequest(
                email="ada@example.com",
                password=PASSWORD,
                first_name="A",
                last_name="B",
                extra=struct({"k" * 5000: 1}),
            )
        )
    )
    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.reason == "INVALID_ARGUMENT"
    assert all(len(field) <= 200 for field in details.violations)


@pytest.mark.postgres_only
async def test_an_expired_session_is_deleted_when_presented(
    watchword: Running, database_url: str
) -> None:
    _, token = await register(watchword, "ada@example.com")
    watchword.clock.advance(3601)
    dead = await failure(watchword.auth.Introspect(auth.IntrospectRequest(session_token=token)))
    assert dead.reason == "SESSION_INVALID"
    with connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


async def test_unknown_enum_filters_are_refused(watchword: Running) -> None:
    bad_status = await failure(
        watchword.admin.ListUsers(
            admin.ListUsersRequest(status=resources_pb2.UserStatus.ValueType(99))
        )
    )
    assert bad_status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_status.violations) == {"status"}
    bad_kind = await failure(
        watchword.admin.ListEvents(
            admin.ListEventsRequest(kind=resources_pb2.EventKind.ValueType(99))
        )
    )
    assert set(bad_kind.violations) == {"kind"}


@pytest.mark.postgres_only
async def test_forwarded_addresses_count_only_from_trusted_proxies(
    start_server: StartServer, database_url: str
) -> None:
    running = await start_server(trusted_proxies=[])
    await running.auth.Register(
        auth.RegisterRequest(
            email="ada@example.com", password=PASSWORD, first_name="A", last_name="B"
        ),
        metadata=(("x-forwarded-for", "203.0.113.7"),),
    )
    with connect(database_url) as conn:
        row = conn.execute("SELECT client_ip FROM events").fetchone()
    assert row == ("127.0.0.1",)


async def test_keys_mailed_to_a_replaced_address_stop_working(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    running = await start_server(**smtp_settings(smtp))
    user_id, _ = await register(running, "typo@example.com")
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="typo@example.com")
    )
    [mail] = await smtp.wait_for(1)
    match = re.search(r"/reset/([A-Za-z0-9_-]+)", mail.body)
    assert match is not None
    updated = await running.admin.UpdateUser(
        admin.UpdateUserRequest(
            user=resources_pb2.User(id=user_id, email="right@example.com"),
            update_mask=field_mask_pb2.FieldMask(paths=["email"]),
        )
    )
    assert not updated.user.email_verified
    stale = await failure(
        running.auth.ResetPassword(
            auth.ResetPasswordRequest(reset_key=match.group(1), new_password="taken over!")
        )
    )
    assert stale.reason == "RESET_KEY_INVALID"


@pytest.mark.postgres_only
async def test_a_block_landing_during_a_login_is_not_undone_by_it(
    watchword: Running, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from watchword_server.security.passwords import PasswordHasher

    await register(watchword, "ada@example.com")
    original = PasswordHasher.verify

    def verify_then_block(self: PasswordHasher, password: str, stored: str) -> bool:
        result = original(self, password, stored)
        # An administrator blocks the user while the login is past its password check.
        with connect(database_url) as conn:
            conn.execute("UPDATE users SET status = 'blocked'")
            conn.commit()
        return result

    monkeypatch.setattr(PasswordHasher, "verify", verify_then_block)
    refused = await failure(
        watchword.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
    )
    assert refused.reason == "ACCOUNT_BLOCKED"
    with connect(database_url) as conn:
        # Only the registration's session exists; the racing login made none.
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (1,)
