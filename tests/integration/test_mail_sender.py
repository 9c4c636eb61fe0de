"""The mail outbox on a real PostgreSQL database (and once on SQLite) with a real SMTP server.

``smtp`` (tests/conftest.py) is an aiosmtpd server on loopback; ``clock`` never moves on
its own, so backoff is stepped through by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.clock import ManualClock
from tests.support.postgres import ThrowawayCluster, postgres_database
from tests.support.smtp import SmtpServer
from watchword_server.config import Settings
from watchword_server.domain.common.outbox import enqueue
from watchword_server.model.mail import OutgoingMail
from watchword_server.model.records import UserStatus
from watchword_server.runtime.mail_sender import MailSender
from watchword_server.runtime.mail_transports import (
    LogTransport,
    MailTransport,
    SmtpTransport,
    load_hook,
    transport_from_settings,
)
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.models import MailOutbox, User
from watchword_server.storage.repositories.users import insert_user
from watchword_server.storage.schema import upgrade

SENDER = "Watchword <noreply@watchword.test>"
# Every wait on an event is bounded, so a broken sender fails the test instead of hanging.
WAIT = 10.0

hooked: list[OutgoingMail] = []
NOT_CALLABLE = 42


def sync_hook(mail: OutgoingMail) -> None:
    """A mail hook as a plain function (the hook tests load it by its path)."""
    hooked.append(mail)


async def async_hook(mail: OutgoingMail) -> None:
    """A mail hook as a coroutine function."""
    await asyncio.sleep(0)  # really async: yields to the loop once
    hooked.append(mail)


async def render(kind: str, recipient: str, context: Mapping[str, str]) -> OutgoingMail:
    """A stand-in for the lead's renderer: adds a link, as the real one does."""
    values = {**context, "link": f"https://example.test/{kind}/{context.get('n', '0')}"}
    return OutgoingMail(
        kind=kind,
        recipient=recipient,
        subject=f"{kind.capitalize()} für {context.get('name', 'dich')}",
        body=f"Grüße, {context.get('name', '')}!\nÖffne {values['link']} ✓",
        context=values,
    )


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
def _clear_hooked() -> Iterator[None]:
    hooked.clear()
    yield
    hooked.clear()


def smtp_transport(server: SmtpServer) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", server.port, sender=SENDER, timeout=5.0)


def sender_for(
    engine: AsyncEngine, transport: MailTransport, clock: ManualClock, **options: Any
) -> MailSender:
    return MailSender(Database(engine), transport, render, clock, **options)


async def add_mail(engine: AsyncEngine, clock: ManualClock, *recipients: str) -> None:
    async with engine.begin() as conn:
        for n, recipient in enumerate(recipients):
            await enqueue(
                conn,
                kind="verification",
                recipient=recipient,
                context={"name": "Łukasz", "n": str(n)},
                now=clock.now(),
            )


async def outbox(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(MailOutbox).order_by(MailOutbox.id))).all())


async def drain(sender: MailSender) -> int:
    total = 0
    while sent := await sender.deliver_due():
        total += sent
    return total


async def test_rolled_back_registration_leaves_no_mail(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    with pytest.raises(RuntimeError, match="later step failed"):
        async with engine.begin() as conn:
            await insert_user(
                conn,
                email="ada@example.com",
                password_hash="x",
                first_name="Ada",
                last_name="L",
                status=UserStatus.PENDING_VERIFICATION,
                email_verified=False,
                extra={},
                now=clock.now(),
            )
            await enqueue(
                conn, kind="verification", recipient="ada@example.com", context={}, now=clock.now()
            )
            raise RuntimeError("a later step failed")

    sender = sender_for(engine, smtp_transport(smtp), clock)
    assert await sender.deliver_due() == 0
    assert await outbox(engine) == []
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(User)) == 0
    assert smtp.messages == []


async def test_committed_mail_is_delivered_once_with_its_headers(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    await add_mail(engine, clock, "ada@example.com")
    sender = sender_for(engine, smtp_transport(smtp), clock)

    assert await sender.deliver_due() == 1
    [mail] = await smtp.wait_for(1, timeout=WAIT)
    assert mail.mail_from == "noreply@watchword.test"
    assert mail.rcpt_tos == ("ada@example.com",)
    assert mail.message["From"] == SENDER
    assert mail.recipient == "ada@example.com"
    assert mail.subject == "Verification für Łukasz"
    assert mail.body == "Grüße, Łukasz!\nÖffne https://example.test/verification/0 ✓"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content_charset() == "utf-8"
    assert mail.message["Message-ID"].endswith("@watchword.test>")

    [row] = await outbox(engine)
    assert (row.sent_time, row.attempts, row.last_error) == (clock.now(), 0, "")
    assert await sender.deliver_due() == 0
    assert len(smtp.messages) == 1


async def test_mail_waits_out_an_smtp_outage_with_backoff_and_survives_a_restart(
    database_url: str, engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    recipients = ("a@example.com", "b@example.com", "c@example.com")
    await add_mail(engine, clock, *recipients)
    sender = sender_for(engine, smtp_transport(smtp), clock, base_backoff=2.0, max_backoff=3.0)
    smtp.stop()

    assert await sender.deliver_due() == 0
    rows = await outbox(engine)
    assert [row.attempts for row in rows] == [1, 1, 1]
    assert all("SMTPConnectError" in row.last_error for row in rows)
    assert {row.next_attempt_time - clock.now() for row in rows} == {timedelta(seconds=2)}
    assert all(row.sent_time is None for row in rows)

    clock.advance(1)
    assert await sender.deliver_due() == 0  # not due yet: nothing is tried
    assert [row.attempts for row in await outbox(engine)] == [1, 1, 1]

    clock.advance(1)
    assert await sender.deliver_due() == 0  # still down: the wait doubles, up to the cap
    rows = await outbox(engine)
    assert [row.attempts for row in rows] == [2, 2, 2]
    assert {row.next_attempt_time - clock.now() for row in rows} == {timedelta(seconds=3)}

    # A new process (engine and sender) finds the rows where the old one left them.
    await engine.dispose()
    restarted = create_engine(database_url)
    try:
        smtp.start()
        clock.advance(3)
        again = sender_for(restarted, smtp_transport(smtp), clock)
        assert await drain(again) == 3
        received = await smtp.wait_for(3, timeout=WAIT)
        assert sorted(mail.recipient for mail in received) == list(recipients)
        assert await drain(again) == 0
        assert await drain(sender) == 0
        assert all(row.sent_time == clock.now() for row in await outbox(restarted))
    finally:
        await restarted.dispose()
    assert len(smtp.messages) == 3


class Gated:
    """Holds its first send until ``hold_until`` is set; sets ``after_send`` after each send."""

    def __init__(
        self,
        inner: MailTransport,
        *,
        hold_until: asyncio.Event | None = None,
        holding: asyncio.Event | None = None,
        after_send: asyncio.Event | None = None,
    ) -> None:
        self.inner = inner
        self.hold_until = hold_until
        self.holding = holding
        self.after_send = after_send
        self.sent = 0

    async def send(self, mail: OutgoingMail) -> None:
        if self.hold_until is not None and self.sent == 0:
            if self.holding is not None:
                self.holding.set()
            await asyncio.wait_for(self.hold_until.wait(), WAIT)
        await self.inner.send(mail)
        self.sent += 1
        if self.after_send is not None:
            self.after_send.set()


async def test_two_processes_deliver_each_mail_exactly_once(
    database_url: str, engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    recipients = [f"user{n:02d}@example.com" for n in range(30)]
    await add_mail(engine, clock, *recipients)
    other_engine = create_engine(database_url)
    try:
        # A sends its first mail only after B has sent one, so B must claim another row
        # while A holds a lock: without SKIP LOCKED, B would wait for A and time out.
        a_holding, b_sent = asyncio.Event(), asyncio.Event()
        a = Gated(smtp_transport(smtp), hold_until=b_sent, holding=a_holding)
        b = Gated(smtp_transport(smtp), after_send=b_sent)
        first = asyncio.create_task(drain(sender_for(engine, a, clock)))
        await asyncio.wait_for(a_holding.wait(), WAIT)
        second = asyncio.create_task(drain(sender_for(other_engine, b, clock)))
        sent = await asyncio.gather(first, second)
    finally:
        await other_engine.dispose()

    assert sum(sent) == 30
    assert a.sent > 0 and b.sent > 0
    received = await smtp.wait_for(30, timeout=WAIT)
    assert sorted(mail.recipient for mail in received) == recipients
    assert all(row.sent_time is not None and row.attempts == 0 for row in await outbox(engine))


async def test_a_failing_mail_does_not_hold_up_the_others(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    smtp.reject.add("gone@example.com")
    await add_mail(engine, clock, "a@example.com", "gone@example.com", "c@example.com")
    sender = sender_for(engine, smtp_transport(smtp), clock)

    with caplog.at_level(logging.WARNING, logger="watchword_server.runtime.mail_sender"):
        assert await sender.deliver_due() == 2
    received = await smtp.wait_for(2, timeout=WAIT)
    assert [mail.recipient for mail in received] == ["a@example.com", "c@example.com"]
    ok, failed, also_ok = await outbox(engine)
    assert ok.sent_time is not None and also_ok.sent_time is not None
    assert (failed.sent_time, failed.attempts) == (None, 1)
    assert "550" in failed.last_error
    [record] = [r for r in caplog.records if r.name == "watchword_server.runtime.mail_sender"]
    assert record.levelno == logging.WARNING
    assert "gone@example.com" in record.getMessage() and "550" in record.getMessage()
    assert "Öffne" not in caplog.text  # the body (and its link) is never logged


async def test_background_loop_delivers_on_start_and_on_wake_and_stops_cleanly(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    await add_mail(engine, clock, "left@example.com")  # left by a previous run
    tasks_before = asyncio.all_tasks()
    # Polling is off in effect, so only start() and wake() can make these passes.
    sender = sender_for(engine, smtp_transport(smtp), clock, poll_interval=3600)
    await sender.start()
    await asyncio.wait_for(sender.idle(), WAIT)
    assert [mail.recipient for mail in smtp.messages] == ["left@example.com"]

    await add_mail(engine, clock, "new@example.com")
    sender.wake()
    await asyncio.wait_for(sender.idle(), WAIT)
    assert [mail.recipient for mail in smtp.messages] == ["left@example.com", "new@example.com"]

    await sender.stop()
    assert asyncio.all_tasks() == tasks_before
    with pytest.raises(RuntimeError, match="not running"):
        sender.wake()
        await sender.idle()


async def test_polling_finds_mail_enqueued_elsewhere(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    sender = sender_for(engine, smtp_transport(smtp), clock, poll_interval=0.05)
    await sender.start()
    try:
        await add_mail(engine, clock, "polled@example.com")  # no wake(): another process's
        [mail] = await smtp.wait_for(1, timeout=WAIT)
        assert mail.recipient == "polled@example.com"
    finally:
        await sender.stop()


async def test_a_failed_pass_is_logged_and_the_loop_goes_on(
    smtp: SmtpServer, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # A database of its own, really stopped while the sender polls, then started again.
    with ThrowawayCluster() as cluster, postgres_database(server_url=cluster.url) as url:
        engine = create_engine(url)
        try:
            await upgrade(engine)
            await add_mail(engine, clock, "later@example.com")
            sender = sender_for(engine, smtp_transport(smtp), clock, poll_interval=3600)
            await asyncio.to_thread(cluster.stop, "fast")
            await sender.start()
            try:
                async with asyncio.timeout(WAIT):
                    while not any("mail delivery failed" in r.getMessage() for r in caplog.records):
                        await asyncio.sleep(0.05)
                await asyncio.to_thread(cluster.start)
                sender.wake()
                await asyncio.wait_for(sender.idle(), WAIT)
            finally:
                await sender.stop()
        finally:
            await engine.dispose()
    assert [mail.recipient for mail in smtp.messages] == ["later@example.com"]
    assert any(
        r.levelno == logging.ERROR and "mail delivery failed" in r.getMessage()
        for r in caplog.records
    )


async def test_stop_lets_the_mail_being_sent_finish(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    await add_mail(engine, clock, "slow@example.com")
    release, holding = asyncio.Event(), asyncio.Event()
    transport = Gated(smtp_transport(smtp), hold_until=release, holding=holding)
    sender = sender_for(engine, transport, clock)
    await sender.start()
    await asyncio.wait_for(holding.wait(), WAIT)
    stopping = asyncio.create_task(sender.stop())
    await asyncio.sleep(0)  # one turn of the loop: stop() begins while the send is held
    release.set()
    await asyncio.wait_for(stopping, WAIT)
    [row] = await outbox(engine)
    assert row.sent_time is not None  # marked, so a restart will not send it again
    assert len(smtp.messages) == 1


async def test_log_transport_writes_the_mail_to_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mail = await render("reset", "ada@example.com", {"name": "Ada"})
    with caplog.at_level(logging.INFO, logger="watchword.mail"):
        await LogTransport().send(mail)
    [record] = caplog.records
    assert (record.name, record.levelno) == ("watchword.mail", logging.INFO)
    text = record.getMessage()
    assert "ada@example.com" in text and mail.subject in text and mail.body in text


def test_transport_from_settings_picks_hook_then_smtp_then_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp = transport_from_settings(
        Settings(smtp_host="mail.example.test", smtp_port=2525, mail_sender=SENDER)
    )
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.host, smtp.port, smtp.sender) == ("mail.example.test", 2525, SENDER)

    hook = Settings(
        smtp_host="mail.example.test", mail_sender=SENDER, mail_hook=f"{__name__}:sync_hook"
    )
    assert not isinstance(transport_from_settings(hook), SmtpTransport | LogTransport)

    with caplog.at_level(logging.WARNING):
        assert isinstance(transport_from_settings(Settings()), LogTransport)
    assert "smtp_host is unset" in caplog.text


@pytest.mark.parametrize("name", ["sync_hook", "async_hook"])
async def test_load_hook_calls_sync_and_async_functions(
    name: str, engine: AsyncEngine, clock: ManualClock
) -> None:
    transport = load_hook(f"tests.integration.test_mail_sender:{name}")
    await add_mail(engine, clock, "hook@example.com")
    assert await sender_for(engine, transport, clock).deliver_due() == 1
    [mail] = hooked
    assert (mail.recipient, mail.context["link"]) == (
        "hook@example.com",
        "https://example.test/verification/0",
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.integration.test_mail_sender", "must look like"),
        ("tests.integration.no_such_module:hook", "cannot import"),
        ("tests.integration.test_mail_sender:no_such_hook", "has no"),
        ("tests.integration.test_mail_sender:NOT_CALLABLE", "not callable"),
    ],
)
def test_load_hook_refuses_a_bad_path(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_hook(path)


async def test_sqlite_outbox_commits_retries_and_delivers(
    tmp_path: Path, smtp: SmtpServer, clock: ManualClock
) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'watchword.db'}")
    try:
        await upgrade(engine)
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await enqueue(
                    conn, kind="reset", recipient="x@example.com", context={}, now=clock.now()
                )
                raise RuntimeError("rolled back")
        smtp.reject.add("gone@example.com")
        await add_mail(engine, clock, "a@example.com", "gone@example.com")
        sender = sender_for(engine, smtp_transport(smtp), clock)

        assert await sender.deliver_due() == 1
        smtp.reject.clear()
        clock.advance(2)
        assert await sender.deliver_due() == 1
        assert await sender.deliver_due() == 0
        received = await smtp.wait_for(2, timeout=WAIT)
        assert [mail.recipient for mail in received] == ["a@example.com", "gone@example.com"]
        rows = await outbox(engine)
        assert [(row.recipient, row.attempts) for row in rows] == [
            ("a@example.com", 0),
            ("gone@example.com", 1),
        ]
        assert all(row.sent_time is not None for row in rows)
    finally:
        await engine.dispose()


async def test_a_mail_sent_again_keeps_its_message_id(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    # What a crash between the SMTP server's "250 OK" and the row's marking looks like to
    # the receiver: the same mail twice (once the claim's lease is over), which it can drop
    # by its Message-ID.
    await add_mail(engine, clock, "twice@example.com", "other@example.com")
    sender = sender_for(engine, smtp_transport(smtp), clock, claim_lease=30)
    assert await sender.deliver_due() == 2
    async with engine.begin() as conn:  # the row as the claim left it
        await conn.execute(
            update(MailOutbox)
            .where(MailOutbox.recipient == "twice@example.com")
            .values(sent_time=None, next_attempt_time=clock.now() + timedelta(seconds=30))
        )
    clock.advance(29)
    assert await sender.deliver_due() == 0  # still its claimer's
    clock.advance(1)
    assert await sender.deliver_due() == 1
    first, other, again = smtp.messages
    assert first.message["Message-ID"] == again.message["Message-ID"]
    assert first.message["Message-ID"] != other.message["Message-ID"]
    assert str(first.message["Message-ID"]).endswith("@watchword.test>")


async def test_a_mail_that_keeps_failing_is_given_up_listed_and_retried_on_demand(
    engine: AsyncEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with SmtpServer(reject={"gone@example.com"}) as smtp:
        await add_mail(engine, clock, "gone@example.com")
        sender = sender_for(engine, smtp_transport(smtp), clock, max_attempts=3)
        for _ in range(5):  # more passes than attempts: the last two find nothing due
            await sender.deliver_due()
            clock.advance(3600)
        [row] = await outbox(engine)
        assert (row.attempts, row.sent_time) == (3, None)
        assert row.dead_time is not None
        assert "given up after 3 attempts" in caplog.text
        [dead] = await sender.dead_letters()
        assert (dead.id, dead.recipient, dead.attempts) == (row.id, "gone@example.com", 3)
        assert "550" in dead.last_error

        smtp.reject.clear()  # the mailbox exists again
        await sender.start()
        try:
            assert await sender.retry([dead.id]) == 1
            [mail] = await smtp.wait_for(1, timeout=WAIT)
            await asyncio.wait_for(sender.idle(), WAIT)
        finally:
            await sender.stop()
        assert mail.rcpt_tos == ("gone@example.com",)
        assert await sender.dead_letters() == []


class Refusing:
    """A transport whose server is down."""

    async def send(self, mail: OutgoingMail) -> None:
        raise ConnectionRefusedError("the SMTP server is down")


async def test_a_claim_taken_over_after_its_lease_cannot_undo_the_new_claimer_s_send(
    engine: AsyncEngine, smtp: SmtpServer, clock: ManualClock
) -> None:
    await add_mail(engine, clock, "slow@example.com")
    release_slow, slow_holding = asyncio.Event(), asyncio.Event()
    release_new, new_holding = asyncio.Event(), asyncio.Event()
    slow = Gated(Refusing(), hold_until=release_slow, holding=slow_holding)
    new = Gated(smtp_transport(smtp), hold_until=release_new, holding=new_holding)
    # Its one failure would give the mail up, were its claim still its own.
    stalled = asyncio.create_task(
        sender_for(engine, slow, clock, claim_lease=30, max_attempts=1).deliver_due()
    )
    await asyncio.wait_for(slow_holding.wait(), WAIT)
    clock.advance(30)  # the lease is over: another server claims the mail
    taking_over = asyncio.create_task(sender_for(engine, new, clock, claim_lease=30).deliver_due())
    await asyncio.wait_for(new_holding.wait(), WAIT)
    release_slow.set()  # the first one's late failure comes while the new one sends
    assert await asyncio.wait_for(stalled, WAIT) == 0
    release_new.set()
    assert await asyncio.wait_for(taking_over, WAIT) == 1
    (row,) = await outbox(engine)
    assert (row.sent_time, row.dead_time, row.attempts, row.last_error) == (
        clock.now(),
        None,
        0,
        "",
    )
