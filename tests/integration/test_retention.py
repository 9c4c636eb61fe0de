"""The retention job on PostgreSQL and SQLite: what no one needs any more goes, in
batches; what is still live, or within its retention, stays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from tests.support.clock import ManualClock
from tests.support.postgres import postgres_database
from tests.support.servers import settings_for
from watchword_server.model.records import UserStatus
from watchword_server.runtime.retention import RetentionJob
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.models import (
    AccountKey,
    LoginFailure,
    MailOutbox,
    PasskeyChallenge,
    SecondFactorChallenge,
    Session,
)
from watchword_server.storage.repositories import retention
from watchword_server.storage.repositories.users import insert_user
from watchword_server.storage.schema import upgrade

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, postgres_server_url: str, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/w.db"
        return
    with postgres_database(server_url=postgres_server_url) as database:
        yield database


@pytest.fixture
async def database(url: str) -> AsyncIterator[Database]:
    engine = create_engine(url)
    await upgrade(engine)
    yield Database(engine)
    await engine.dispose()


async def _seed(database: Database) -> uuid.UUID:
    async with database.begin() as conn:
        user = await insert_user(
            conn,
            email="ada@example.com",
            password_hash="h",
            first_name="A",
            last_name="L",
            status=UserStatus.ACTIVE,
            email_verified=True,
            extra={},
            now=NOW - 60 * DAY,
        )
        sessions = [  # (name, lifetime, last seen)
            ("short-expired", 3600, NOW - timedelta(hours=2)),
            ("short-live", 3600, NOW - timedelta(minutes=10)),
            ("long-live", 30 * 86400, NOW - 10 * DAY),
            ("long-expired", 30 * 86400, NOW - 31 * DAY),
        ]
        for name, lifetime, seen in sessions:
            await conn.execute(
                insert(Session).values(
                    id=uuid.uuid4(),
                    user_id=user.id,
                    token_digest=name.encode().ljust(32, b"-"),
                    lifetime=lifetime,
                    remember=lifetime > 3600,
                    client_ip=name,
                    create_time=seen,
                    last_seen_time=seen,
                )
            )
        keys = [  # (name, expires, used)
            ("used-long-ago", NOW + DAY, NOW - 8 * DAY),
            ("used-lately", NOW + DAY, NOW - DAY),
            ("expired-long-ago", NOW - 8 * DAY, None),
            ("live", NOW + DAY, None),
        ]
        for name, expires, used in keys:
            await conn.execute(
                insert(AccountKey).values(
                    id=uuid.uuid4(),
                    user_id=user.id,
                    purpose=name,
                    key_digest=name.encode().ljust(32, b"-"),
                    create_time=NOW - 9 * DAY,
                    expire_time=expires,
                    used_time=used,
                )
            )
        mails = [  # (recipient, sent, dead)
            ("sent-long-ago", NOW - 8 * DAY, None),
            ("sent-lately", NOW - DAY, None),
            ("pending", None, None),
            ("dead-long-ago", None, NOW - 31 * DAY),
            ("dead-lately", None, NOW - DAY),
        ]
        for recipient, sent, dead in mails:
            await conn.execute(
                insert(MailOutbox).values(
                    kind="reset",
                    recipient=recipient,
                    context={},
                    attempts=0,
                    last_error="",
                    create_time=NOW - 40 * DAY,
                    next_attempt_time=NOW,
                    sent_time=sent,
                    dead_time=dead,
                )
            )
        for age in (timedelta(hours=1), timedelta(minutes=1)):
            await conn.execute(
                insert(LoginFailure).values(
                    email_key=b"k" * 32, client_ip="192.0.2.1", create_time=NOW - age
                )
            )
        for name, expires in (("challenge-expired", NOW), ("challenge-live", NOW + 60 * SECOND)):
            await conn.execute(
                insert(SecondFactorChallenge).values(
                    id=uuid.uuid4(),
                    user_id=user.id,
                    challenge_digest=name.encode().ljust(32, b"-"),
                    credential_digest=b"c" * 32,
                    remember=False,
                    client_ip=name,
                    create_time=NOW - 300 * SECOND,
                    expire_time=expires,
                )
            )
        for purpose, expires in (("expired", NOW - timedelta(seconds=1)), ("live", NOW + DAY)):
            await conn.execute(
                insert(PasskeyChallenge).values(
                    id=uuid.uuid4(),
                    challenge_digest=purpose.encode().ljust(32, b"-"),
                    purpose=purpose,
                    user_id=user.id,
                    email="",
                    create_time=NOW - timedelta(minutes=10),
                    expire_time=expires,
                )
            )
    return user.id


async def _left(database: Database, column: object) -> set[object]:
    async with database.connect() as conn:
        return {row[0] for row in await conn.execute(select(column))}  # type: ignore[call-overload]


async def test_a_round_removes_only_what_is_done_with(database: Database) -> None:
    await _seed(database)
    settings = settings_for(str(database.engine.url.render_as_string(hide_password=False)))
    job = RetentionJob(database, settings, ManualClock(NOW))
    removed = await job.purge()
    assert removed == {
        "sessions": 2,
        "keys": 2,
        "sent_mail": 1,
        "dead_mail": 1,
        "login_failures": 1,
        "second_factor_challenges": 1,
        "passkey_challenges": 1,
    }
    assert await _left(database, SecondFactorChallenge.client_ip) == {"challenge-live"}
    assert await _left(database, PasskeyChallenge.purpose) == {"live"}
    assert await _left(database, Session.client_ip) == {"short-live", "long-live"}
    assert await _left(database, AccountKey.purpose) == {"used-lately", "live"}
    assert await _left(database, MailOutbox.recipient) == {
        "sent-lately",
        "pending",
        "dead-lately",
    }
    async with database.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(LoginFailure)) == 1
    assert await job.purge() == dict.fromkeys(removed, 0)  # nothing left to do


async def test_large_purges_go_in_batches(database: Database) -> None:
    async with database.begin() as conn:
        await conn.execute(
            insert(LoginFailure),
            [
                {"email_key": b"k" * 32, "client_ip": "x", "create_time": NOW - DAY}
                for _ in range(retention.BATCH * 2 + 5)
            ],
        )
    assert await retention.purge_failures(database.engine, NOW) == retention.BATCH * 2 + 5
