"""`watchword keys` and `watchword users`: a fresh install gets its first admin."""

from __future__ import annotations

import grpc
import pytest

from tests.support.cli import watchword_cli
from tests.support.flows import login
from tests.support.postgres import connect
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import access_service_pb2_grpc, admin_service_pb2_grpc, resources_pb2
from watchword.auth.v1 import admin_service_pb2 as admin


@pytest.mark.postgres_only
async def test_first_admin_and_a_key_from_the_command_line(
    watchword: Running, database_url: str
) -> None:
    created = watchword_cli(database_url, "keys", "create", "billing", "--scope", "access")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("wwk_")

    listed = watchword_cli(database_url, "keys", "list")
    assert "billing\taccess" in listed.stdout
    assert secret not in listed.stdout
    again = watchword_cli(database_url, "keys", "create", "billing", "--scope", "admin")
    assert again.returncode == 1 and "exists already" in again.stderr

    user = watchword_cli(
        database_url,
        "users",
        "create",
        "root@example.com",
        "--group",
        "admins",
        stdin="a strong password\n",
    )
    assert user.returncode == 0, user.stderr
    user_id = user.stdout.strip().splitlines()[-1]
    assert await login(watchword, "root@example.com", "a strong password")

    async with grpc.aio.insecure_channel(watchword.address) as channel:
        stub = access_service_pb2_grpc.AccessServiceStub(channel)
        metadata = (("authorization", f"Bearer {secret}"),)
        reply = await stub.HasMembership(
            access.HasMembershipRequest(user_id=user_id, group="admins"), metadata=metadata
        )
        assert reply.member
        revoked = watchword_cli(database_url, "keys", "revoke", "billing")
        assert revoked.returncode == 0, revoked.stderr
        try:
            await stub.HasMembership(
                access.HasMembershipRequest(user_id=user_id, group="admins"), metadata=metadata
            )
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        else:
            raise AssertionError("a revoked key still works")
    with connect(database_url) as conn:
        left = conn.execute("SELECT count(*) FROM service_keys WHERE name = 'billing'")
        assert left.fetchone() == (0,)


@pytest.mark.postgres_only
async def test_key_names_have_one_limit_and_the_longest_works(
    watchword: Running, database_url: str
) -> None:
    too_long = watchword_cli(database_url, "keys", "create", "k" * 129, "--scope", "admin")
    assert too_long.returncode == 1
    assert "at most 128 characters" in too_long.stderr
    longest = "k" * 128
    created = watchword_cli(database_url, "keys", "create", longest, "--scope", "admin")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    metadata = (("authorization", f"Bearer {secret}"),)
    # A write with that key records the key as the event's origin (it must fit).
    stub = admin_service_pb2_grpc.AdminServiceStub(watchword.channel)
    await stub.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name="ops")), metadata=metadata
    )
    with connect(database_url) as conn:
        rows = conn.execute("SELECT origin FROM events WHERE kind = 'group_created'").fetchall()
    assert rows == [(f"admin:{longest}",)]


@pytest.mark.postgres_only
async def test_users_create_with_groups_is_all_or_nothing(
    watchword: Running, database_url: str
) -> None:
    failed = watchword_cli(
        database_url,
        "users",
        "create",
        "half@example.com",
        "--group",
        "ops",
        "--group",
        "g" * 256,  # no group may be called that
        stdin="a strong password\n",
    )
    assert failed.returncode == 1
    assert "groups" in failed.stderr
    with connect(database_url) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()
        groups = conn.execute("SELECT count(*) FROM groups").fetchone()
    assert users == (0,) and groups == (0,)  # neither the user nor the first group
    made = watchword_cli(
        database_url,
        "users",
        "create",
        "whole@example.com",
        "--group",
        "ops",
        "--group",
        "ops",
        stdin="a strong password\n",
    )
    assert made.returncode == 0, made.stderr
    with connect(database_url) as conn:
        memberships = conn.execute("SELECT count(*) FROM memberships").fetchone()
    assert memberships == (1,)


@pytest.mark.postgres_only
def test_mail_given_up_is_listed_and_sent_again_from_the_command_line(database_url: str) -> None:
    with connect(database_url) as conn:
        row = conn.execute(
            "INSERT INTO mail_outbox (kind, recipient, context, attempts, last_error, "
            "create_time, next_attempt_time, dead_time) VALUES ('reset', 'gone@example.com', "
            "'{}', 12, '550 no such mailbox', now(), now(), now()) RETURNING id"
        ).fetchone()
        conn.commit()
    assert row is not None
    listed = watchword_cli(database_url, "mail", "dead")
    assert listed.returncode == 0, listed.stderr
    assert f"{row[0]}\treset\tgone@example.com\t12 attempts" in listed.stdout
    assert "550 no such mailbox" in listed.stdout
    refused = watchword_cli(database_url, "mail", "retry")
    assert refused.returncode == 1 and "--all" in refused.stderr
    retried = watchword_cli(database_url, "mail", "retry", str(row[0]))
    assert retried.returncode == 0 and "1 mail(s) due again" in retried.stdout
    with connect(database_url) as conn:
        state = conn.execute(
            "SELECT dead_time, attempts FROM mail_outbox WHERE id = %s", [row[0]]
        ).fetchone()
    assert state == (None, 0)
    assert "no mail was given up" in watchword_cli(database_url, "mail", "dead").stdout
