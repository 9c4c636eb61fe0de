"""Writes that read a user's row and write it back, racing a change that commits in
between: the change must survive. The test holds the row's lock in its own transaction,
waits until the server's call queues behind it, then commits the racing change (what an
administrator's BlockUser or UpdateUser commits) and lets the call go on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg
from google.protobuf import field_mask_pb2

from tests.support.flows import register_reply
from tests.support.postgres import connect, conninfo
from tests.support.servers import StartServer
from tests.support.smtp import SmtpServer, key_of, smtp_settings
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2

NEW_PASSWORD = "a whole new secret"


def _waiting_behind_a_lock(url: str) -> int:
    with connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


async def _race(url: str, user_id: str, call: Callable[[], Awaitable[object]], change: str) -> None:
    """Run ``call`` while the test holds the user's row; once the call waits for it,
    commit ``change`` (SQL on the row, ``%s`` its id) and let the call finish."""
    holder = await psycopg.AsyncConnection.connect(conninfo(url))
    try:
        await holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", [user_id])
        pending = asyncio.ensure_future(call())
        deadline = time.monotonic() + 10
        while await asyncio.to_thread(_waiting_behind_a_lock, url) == 0:
            assert time.monotonic() < deadline, "the call never waited for the row"
            assert not pending.done(), "the call finished without the row"
            await asyncio.sleep(0.05)
        await holder.execute(change, [user_id])
        await holder.commit()
        await pending
    finally:
        await holder.close()


def _status(url: str, user_id: str) -> str:
    with connect(url) as conn:
        row = conn.execute("SELECT status FROM users WHERE id = %s", [user_id]).fetchone()
    assert row is not None
    return str(row[0])


async def test_a_block_during_a_password_reset_is_kept(
    start_server: StartServer, database_url: str, smtp: SmtpServer
) -> None:
    running = await start_server(**smtp_settings(smtp))
    user = (await register_reply(running)).user
    await running.admin.DisableUser(admin.DisableUserRequest(user_id=user.id))
    await running.auth.RequestPasswordReset(
        auth.RequestPasswordResetRequest(email="ada@example.com")
    )
    (mail,) = await smtp.wait_for(1)
    request = auth.ResetPasswordRequest(reset_key=key_of(mail), new_password=NEW_PASSWORD)
    # A reset re-enables a DISABLED account; a block that lands meanwhile must stand.
    await _race(
        database_url,
        user.id,
        lambda: running.auth.ResetPassword(request),
        "UPDATE users SET status = 'blocked' WHERE id = %s",
    )
    assert _status(database_url, user.id) == "blocked"


async def test_a_block_during_a_verification_is_kept(
    start_server: StartServer, database_url: str, smtp: SmtpServer
) -> None:
    running = await start_server(registration_verification=True, **smtp_settings(smtp))
    user = (await register_reply(running)).user
    (mail,) = await smtp.wait_for(1)
    request = auth.VerifyRequest(verification_key=key_of(mail))
    await _race(
        database_url,
        user.id,
        lambda: running.auth.Verify(request),
        "UPDATE users SET status = 'blocked' WHERE id = %s",
    )
    assert _status(database_url, user.id) == "blocked"


async def test_an_admin_change_to_extra_during_a_profile_update_is_kept(
    start_server: StartServer, database_url: str
) -> None:
    fields = [{"name": "nickname", "profile": True}, {"name": "role"}]
    running = await start_server(custom_fields=fields)
    reply = await register_reply(running)
    request = auth.UpdateProfileRequest(
        session_token=reply.session_token,
        user=resources_pb2.User(),
        update_mask=field_mask_pb2.FieldMask(paths=["extra.nickname"]),
    )
    request.user.extra.update({"nickname": "ada"})
    await _race(
        database_url,
        reply.user.id,
        lambda: running.auth.UpdateProfile(request),
        """UPDATE users SET extra = extra || '{"role": "editor"}'::jsonb WHERE id = %s""",
    )
    with connect(database_url) as conn:
        row = conn.execute("SELECT extra FROM users WHERE id = %s", [reply.user.id]).fetchone()
    assert row is not None and row[0] == {"role": "editor", "nickname": "ada"}
