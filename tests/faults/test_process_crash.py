"""A server killed (SIGKILL) in the middle of a burst of registrations, then started
again: every account is whole (its verification key and mail came with it, or nothing
did), every answered registration exists, and every account's mail arrives, a copy sent
again only with the same Message-ID."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc

from tests.support.flows import PASSWORD
from tests.support.postgres import connect
from tests.support.processes import serve_process, server_env
from tests.support.smtp import SmtpServer, smtp_settings
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import auth_service_pb2_grpc

_BURST = 60
_KILL_AFTER = 15


async def test_sigkill_mid_burst_leaves_whole_accounts_and_loses_no_mail(
    database_url: str, smtp: SmtpServer, tmp_path: Path
) -> None:
    # A mail the killed server had claimed goes out once its lease is over.
    env = server_env(
        database_url, registration_verification=True, mail_claim_lease=2, **smtp_settings(smtp)
    )
    answered: list[str] = []
    async with serve_process(env, tmp_path / "first.log") as first:
        async with grpc.aio.insecure_channel(first.address) as channel:
            stub = auth_service_pb2_grpc.AuthServiceStub(channel)

            async def register(email: str) -> None:
                request = auth.RegisterRequest(
                    email=email, password=PASSWORD, first_name="A", last_name="B"
                )
                try:
                    await stub.Register(request, timeout=30)
                except grpc.aio.AioRpcError:
                    return  # killed under it: the account may or may not exist, but whole
                answered.append(email)

            calls = [asyncio.ensure_future(register(f"user{i}@example.com")) for i in range(_BURST)]
            deadline = time.monotonic() + 30
            while len(answered) < _KILL_AFTER:
                assert time.monotonic() < deadline, "the burst never got going"
                await asyncio.sleep(0.01)
            first.process.kill()  # SIGKILL: no shutdown, no flush, no goodbye
            first.process.wait()
            await asyncio.gather(*calls)
    assert _KILL_AFTER <= len(answered) < _BURST

    with connect(database_url) as conn:
        users = {row[0] for row in conn.execute("SELECT email FROM users")}
        keyed = {
            row[0]
            for row in conn.execute(
                "SELECT u.email FROM users u JOIN account_keys k ON k.user_id = u.id "
                "WHERE k.purpose = 'verification'"
            )
        }
        queued = {row[0] for row in conn.execute("SELECT recipient FROM mail_outbox")}
    assert set(answered) <= users
    assert users == keyed == queued  # each account whole, with its key and its mail

    async with serve_process(env, tmp_path / "second.log"):
        deadline = time.monotonic() + 30
        while {mail.rcpt_tos[0] for mail in smtp.messages} != users:
            assert time.monotonic() < deadline, "some accounts never got their mail"
            await asyncio.sleep(0.1)
    ids: dict[str, set[str]] = {}
    for mail in smtp.messages:
        ids.setdefault(mail.rcpt_tos[0], set()).add(str(mail.message["Message-ID"]))
    assert all(len(found) == 1 for found in ids.values()), ids
