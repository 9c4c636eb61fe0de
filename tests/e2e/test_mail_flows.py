"""Verification and password reset through real mail (aiosmtpd on loopback)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from tests.support.flows import PASSWORD, register_reply
from tests.support.postgres import connect
from tests.support.rows import table_rows, update_rows
from tests.support.rpc_errors import failure
from tests.support.servers import Running, StartServer
from tests.support.smtp import SmtpServer, key_of, smtp_settings
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2


async def login(running: Running, email: str = "ada@example.com", password: str = PASSWORD) -> str:
    reply = await running.auth.Authenticate(
        auth.AuthenticateRequest(email=email, password=password)
    )
    return str(reply.session_token)


async def mailing_server(start_server: StartServer, smtp: SmtpServer, **settings: Any) -> Running:
    return await start_server(registration_verification=True, **smtp_settings(smtp), **settings)


async def settle(running: Running) -> None:
    """Let the work answered calls left behind (reset keys) and then the mail sender
    finish every mail that is due."""
    sender, domain = running.server.mail_sender, running.server.domain
    assert sender is not None and domain is not None
    await domain.background.idle()
    sender.wake()
    await sender.idle()


async def test_register_verify_login(start_server: StartServer, smtp: SmtpServer) -> None:
    running = await mailing_server(start_server, smtp)
    registered = await register_reply(running)
    assert registered.user.status == resources_pb2.USER_STATUS_PENDING_VERIFICATION
    assert not registered.session_token

    [mail] = await smtp.wait_for(1)
    assert mail.recipient == "ada@example.com"
    assert mail.subject == "Email verification"
    assert "watchword@example.com" in mail.mail_from
    key = key_of(mail)

    pending = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
    )
    assert pending.reason == "ACCOUNT_PENDING_VERIFICATION"

    verified = await running.auth.Verify(auth.VerifyRequest(verification_key=key))
    assert verified.user.status == resources_pb2.USER_STATUS_ACTIVE
    assert verified.user.email_verified
    assert await login(running)

    again = await failure(running.auth.Verify(auth.VerifyRequest(verification_key=key)))
    assert again.code == grpc.StatusCode.INVALID_ARGUMENT
    assert again.reason == "VERIFICATION_KEY_INVALID"
    assert set(again.violations) == {"verification_key"}


async def test_verification_key_expires(start_server: StartServer, smtp: SmtpServer) -> None:
    running = await mailing_server(start_server, smtp, verification_key_ttl=600)
    await register_reply(running)
    [mail] = await smtp.wait_for(1)
    running.clock.advance(601)
    expired = await failure(running.auth.Verify(auth.VerifyRequest(verification_key=key_of(mail))))
    assert expired.reason == "VERIFICATION_KEY_INVALID"


@pytest.mark.parametrize("word", ["blocked", "pending", "disabled", ""])
async def test_status_words_are_never_keys(
    start_server: StartServer, smtp: SmtpServer, database_url: str, word: str
) -> None:
    running = await mailing_server(start_server, smtp)
    await register_reply(running)
    await smtp.wait_for(1)
    refused = await failure(running.auth.Verify(auth.VerifyRequest(verification_key=word)))
    assert refused.reason == "VERIFICATION_KEY_INVALID"
    [row] = table_rows(database_url, "users", "status", "email_verified")
    assert (row["status"], row["email_verified"]) == ("pending_verification", False)


async def test_approval_after_verification(start_server: StartServer, smtp: SmtpServer) -> None:
    running = await mailing_server(start_server, smtp, registration_approval=True)
    await register_reply(running)
    [mail] = await smtp.wait_for(1)
    verified = await running.auth.Verify(auth.VerifyRequest(verification_key=key_of(mail)))
    assert verified.user.status == resources_pb2.USER_STATUS_PENDING_APPROVAL
    waiting = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="ada@example.com", password=PASSWORD)
        )
    )
    assert waiting.code == grpc.StatusCode.FAILED_PRECONDITION
    assert waiting.reason == "ACCOUNT_PENDING_APPROVAL"


async def test_approval_only_sends_no_mail(start_server: StartServer, smtp: SmtpServer) -> None:
    running = await start_server(registration_approval=True, **smtp_settings(smtp))
    registered = await register_reply(running)
    assert registered.user.status == resources_pb2.USER_STATUS_PENDING_APPROVAL
    await settle(running)
    assert smtp.messages == []


async def test_reset_for_an_unknown_email_looks_the_same_and_sends_nothing(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    running = await start_server(**smtp_settings(smtp))
    await register_reply(running)
    known = await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ada@example.com")
    )
    unknown = await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="nobody@example.com")
    )
    assert known == unknown == auth.RequestPasswordResetResponse()
    await settle(running)
    assert [mail.recipient for mail in smtp.messages] == ["ada@example.com"]
    assert smtp.messages[0].subject == "Password reset requested"


async def test_reset_works_once_and_kills_earlier_sessions(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    running = await start_server(**smtp_settings(smtp))
    early = (await register_reply(running)).session_token
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ADA@example.com")
    )
    [mail] = await smtp.wait_for(1)
    key = key_of(mail)
    reset = await running.auth.ResetPassword(
        auth.ResetPasswordRequest(reset_key=key, new_password="a whole new secret")
    )
    assert reset.user.email_verified
    dead = await failure(running.auth.Introspect(auth.IntrospectRequest(session_token=early)))
    assert dead.reason == "SESSION_INVALID"
    assert await login(running, password="a whole new secret")
    again = await failure(
        running.auth.ResetPassword(
            auth.ResetPasswordRequest(reset_key=key, new_password="yet another secret")
        )
    )
    assert again.code == grpc.StatusCode.INVALID_ARGUMENT
    assert again.reason == "RESET_KEY_INVALID"
    assert set(again.violations) == {"reset_key"}


async def test_reset_keys_expire_and_are_superseded(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    running = await start_server(reset_key_ttl=3600, **smtp_settings(smtp))
    await register_reply(running)
    request = auth.RequestPasswordResetRequest(email="ada@example.com")
    await running.auth.RequestPasswordReset(request)
    await running.auth.RequestPasswordReset(request)
    first, second = await smtp.wait_for(2)
    superseded = await failure(
        running.auth.ResetPassword(
            auth.ResetPasswordRequest(reset_key=key_of(first), new_password="new secret one")
        )
    )
    assert superseded.reason == "RESET_KEY_INVALID"
    running.clock.advance(3601)
    expired = await failure(
        running.auth.ResetPassword(
            auth.ResetPasswordRequest(reset_key=key_of(second), new_password="new secret two")
        )
    )
    assert expired.reason == "RESET_KEY_INVALID"


async def test_a_password_change_voids_outstanding_reset_keys(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    # A reset key mailed before the change (perhaps to an attacker reading the mailbox)
    # must not undo it.
    running = await start_server(**smtp_settings(smtp))
    token = (await register_reply(running)).session_token
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ada@example.com")
    )
    [mail] = await smtp.wait_for(1)
    await running.auth.ChangePassword(
        auth.ChangePasswordRequest(
            session_token=token, old_password=PASSWORD, new_password="changed on purpose"
        )
    )
    stale = await failure(
        running.auth.ResetPassword(
            auth.ResetPasswordRequest(reset_key=key_of(mail), new_password="the attacker's")
        )
    )
    assert stale.reason == "RESET_KEY_INVALID"
    assert await login(running, password="changed on purpose")


async def test_reset_reenables_disabled_but_not_blocked(
    start_server: StartServer, smtp: SmtpServer, database_url: str
) -> None:
    running = await start_server(**smtp_settings(smtp))
    await register_reply(running, "dis@example.com")
    await register_reply(running, "blk@example.com")
    for email in ("dis@example.com", "blk@example.com"):
        await running.auth.RequestPasswordReset(auth.RequestPasswordResetRequest(email=email))
    mails = {mail.recipient: mail for mail in await smtp.wait_for(2)}
    # As DisableUser / BlockUser would leave them.
    await update_rows(database_url, "users", where={"email": "dis@example.com"}, status="disabled")
    await update_rows(database_url, "users", where={"email": "blk@example.com"}, status="blocked")
    disabled = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="dis@example.com", password=PASSWORD)
        )
    )
    assert disabled.reason == "ACCOUNT_DISABLED"

    enabled = await running.auth.ResetPassword(
        auth.ResetPasswordRequest(
            reset_key=key_of(mails["dis@example.com"]), new_password="fresh secret 1"
        )
    )
    assert enabled.user.status == resources_pb2.USER_STATUS_ACTIVE
    assert await login(running, "dis@example.com", "fresh secret 1")

    still = await running.auth.ResetPassword(
        auth.ResetPasswordRequest(
            reset_key=key_of(mails["blk@example.com"]), new_password="fresh secret 2"
        )
    )
    assert still.user.status == resources_pb2.USER_STATUS_BLOCKED
    blocked = await failure(
        running.auth.Authenticate(
            auth.AuthenticateRequest(email="blk@example.com", password="fresh secret 2")
        )
    )
    assert blocked.reason == "ACCOUNT_BLOCKED"
    # A blocked account gets no further reset mail.
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="blk@example.com")
    )
    await settle(running)
    assert len(smtp.messages) == 2


async def test_malformed_email_for_reset_is_invalid_argument(watchword: Running) -> None:
    refused = await failure(
        watchword.auth.RequestPasswordReset(auth.RequestPasswordResetRequest(email="nope"))
    )
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(refused.violations) == {"email"}


@pytest.mark.postgres_only
async def test_database_holds_no_key_in_clear(
    start_server: StartServer, smtp: SmtpServer, database_url: str
) -> None:
    running = await mailing_server(start_server, smtp)
    await register_reply(running)
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ada@example.com")
    )
    keys = [key_of(mail) for mail in await smtp.wait_for(2)]
    with connect(database_url) as conn:
        tables = [
            row[0]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        dump = "\n".join(
            str(row[0])
            for table in tables
            for row in conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')  # noqa: S608
        )
    assert "account_keys" in tables and "mail_outbox" in tables
    for key in keys:
        assert len(key) >= 43
        assert key not in dump
        assert key.encode().hex() not in dump


async def test_smtp_down_loses_and_duplicates_nothing_across_a_restart(
    start_server: StartServer, smtp: SmtpServer
) -> None:
    smtp.stop()
    first = await mailing_server(start_server, smtp)
    replies = [await register_reply(first, f"user{i}@example.com") for i in range(20)]
    assert all(r.user.status == resources_pb2.USER_STATUS_PENDING_VERIFICATION for r in replies)
    await settle(first)  # every attempt fails while SMTP is down
    await first.channel.close(None)
    await first.server.stop(0)

    smtp.start()
    second = await mailing_server(start_server, smtp)
    second.clock.advance(3600)  # past any backoff
    await settle(second)
    mails = await smtp.wait_for(20)
    assert sorted(mail.recipient for mail in mails) == sorted(
        f"user{i}@example.com" for i in range(20)
    )
    await settle(second)
    assert len(smtp.messages) == 20


HOOKED: list[Any] = []


async def collect(mail: Any) -> None:
    """A mail hook, named in settings as `tests.e2e.test_mail_flows:collect`."""
    HOOKED.append(mail)


async def test_a_hook_replaces_the_sender(start_server: StartServer) -> None:
    HOOKED.clear()
    running = await start_server(
        registration_verification=True, mail_hook="tests.e2e.test_mail_flows:collect"
    )
    await register_reply(running)
    await settle(running)
    [mail] = HOOKED
    assert mail.kind == "verification"
    assert mail.recipient == "ada@example.com"
    assert mail.context["link"] in mail.body
    verified = await running.auth.Verify(auth.VerifyRequest(verification_key=mail.context["key"]))
    assert verified.user.status == resources_pb2.USER_STATUS_ACTIVE


async def test_every_flow_leaves_an_event(
    start_server: StartServer, smtp: SmtpServer, database_url: str
) -> None:
    running = await mailing_server(start_server, smtp)
    await register_reply(running)
    [mail] = await smtp.wait_for(1)
    await running.auth.Verify(auth.VerifyRequest(verification_key=key_of(mail)))
    token = await login(running)
    await running.auth.ChangePassword(
        auth.ChangePasswordRequest(
            session_token=token, old_password=PASSWORD, new_password="second secret"
        )
    )
    await running.auth.UpdateProfile(
        auth.UpdateProfileRequest(session_token=token, user=resources_pb2.User(first_name="A"))
    )
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ada@example.com")
    )
    _, reset_mail = await smtp.wait_for(2)
    await running.auth.ResetPassword(
        auth.ResetPasswordRequest(reset_key=key_of(reset_mail), new_password="third secret")
    )
    rows = table_rows(database_url, "events", "kind", "description", order_by="id")
    assert [row["kind"] for row in rows] == [
        "registration",
        "email_verification",
        "login",
        "password_change",
        "profile_update",
        "password_retrieval",
        "password_reset",
    ]
    assert all(row["description"] and "{" not in row["description"] for row in rows)


@pytest.mark.postgres_only
async def test_enumeration_safe_registration_answers_as_for_a_new_address_and_mails_the_owner(
    start_server: StartServer, smtp: SmtpServer, database_url: str
) -> None:
    running = await mailing_server(start_server, smtp, registration_enumeration_safe=True)
    await register_reply(running, "ada@example.com")
    (verification,) = await smtp.wait_for(1)
    again = await register_reply(running, "ADA@example.com")
    fresh = await register_reply(running, "bob@example.com")
    # The same answer in every field a caller could compare, but the id and the address.
    assert not again.session_token and not fresh.session_token
    for reply in (again, fresh):
        reply.user.ClearField("id")
        reply.user.ClearField("email")
        reply.user.ClearField("create_time")
        reply.user.ClearField("update_time")
    assert again == fresh
    mails = await smtp.wait_for(3)
    to_ada = [mail for mail in mails if mail.rcpt_tos == ("ada@example.com",)]
    assert [mail.subject for mail in to_ada] == [
        verification.subject,
        "Someone tried to register with your address",
    ]
    assert "You have an account already" in to_ada[1].body
    with connect(database_url) as conn:
        rows = conn.execute("SELECT email FROM users ORDER BY email").fetchall()
    assert [row[0] for row in rows] == ["ada@example.com", "bob@example.com"]


async def test_enumeration_safe_registration_needs_a_pending_first_status(
    start_server: StartServer,
) -> None:
    with pytest.raises(ValueError, match="registration_enumeration_safe needs"):
        await start_server(registration_enumeration_safe=True, registration_verification=False)
