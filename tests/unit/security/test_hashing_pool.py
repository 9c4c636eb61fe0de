"""The bounded, low-priority pool that runs every password hash."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
from collections.abc import Iterator

import pytest

from watchword_server.config import Settings
from watchword_server.model.errors import Overloaded, Reason
from watchword_server.security.hashing_pool import HashingPool, default_thread_count
from watchword_server.security.passwords import PasswordHasher, Pepper

HASHER = PasswordHasher("bcrypt(4)", Pepper("k1", b"unit-test-pepper-0123456789"))


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Jobs that ``gate.wait`` hold their thread until the test opens it (always, at the end)."""
    event = threading.Event()
    yield event
    event.set()


def _own_priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
@pytest.mark.parametrize("niceness", [0, 5, 10])
async def test_workers_run_that_much_nicer_than_the_thread_that_started_them(
    niceness: int,
) -> None:
    # On one core every hashing thread would take the loop's: all of them are niced.
    pool = HashingPool(HASHER, threads=1, niceness=niceness, cores=1)
    try:
        worker = await pool.submit(_own_priority)
    finally:
        pool.close()
    assert worker == min(19, _own_priority() + niceness)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
async def test_a_free_prompt_thread_is_preferred_and_the_last_core_s_thread_is_niced(
    gate: threading.Event,
) -> None:
    # Two cores, two threads: one runs at the process's priority, the other (which would
    # take the event loop's core) five steps nicer.
    pool = HashingPool(HASHER, threads=2, niceness=5, cores=2, max_waiting=4)
    own = _own_priority()

    def held() -> int:
        gate.wait()
        return _own_priority()

    try:
        assert await pool.submit(_own_priority) == own  # an idle pool: the prompt thread
        first = pool.submit(held)  # holds the prompt thread
        second = pool.submit(held)  # the niced one
        third = pool.submit(held)  # waits for whichever is free first
        assert pool.admitted == 3
        gate.set()
        assert sorted([await first, await second]) == [own, min(19, own + 5)]
        assert await third in (own, min(19, own + 5))
        assert pool.admitted == 0
        assert await pool.submit(_own_priority) == own  # prompt again once it is free
    finally:
        pool.close()


async def test_closing_cancels_the_jobs_still_waiting(gate: threading.Event) -> None:
    pool = HashingPool(HASHER, threads=1, max_waiting=2)
    running = pool.submit(gate.wait)
    waiting = pool.submit(gate.wait)
    pool.close()
    assert pool.admitted == 1  # the running job keeps its place until it ends
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    assert await running
    assert pool.admitted == 0


async def test_a_failing_job_gives_its_error_and_frees_its_place() -> None:
    pool = HashingPool(HASHER, threads=1)

    def broken() -> None:
        raise ValueError("not a hash")

    try:
        with pytest.raises(ValueError, match="not a hash"):
            await pool.submit(broken)
        assert pool.admitted == 0
    finally:
        pool.close()


async def test_hash_verify_and_dummy_run_on_the_pool() -> None:
    pool = HashingPool(HASHER, threads=2)
    try:
        stored = await pool.hash("a secret")
        assert await pool.verify("a secret", stored)
        assert not await pool.verify("another", stored)
        assert await pool.verify_dummy("a secret") is False
        assert not pool.needs_rehash(stored)
        assert pool.admitted == 0
    finally:
        pool.close()


async def test_past_the_waiting_bound_a_job_is_refused_at_once(gate: threading.Event) -> None:
    pool = HashingPool(HASHER, threads=1, max_waiting=1)
    try:
        running = pool.submit(gate.wait)
        waiting = pool.submit(gate.wait)
        assert pool.admitted == 2
        for refused in (lambda: pool.submit(gate.wait), lambda: pool.verify_dummy("x")):
            with pytest.raises(Overloaded) as caught:
                await refused()
            assert caught.value.reason is Reason.OVERLOADED
            assert int(caught.value.metadata["retry_after"]) >= 1
        assert pool.admitted == 2  # refusals take no place
        gate.set()
        assert await running and await waiting
        assert pool.admitted == 0
        assert await pool.verify_dummy("x") is False  # admitted again once places are free
    finally:
        pool.close()


async def test_retry_after_comes_from_the_queue_and_recent_durations(
    gate: threading.Event,
) -> None:
    ticks = itertools.count(0.0, 10.0)  # every timed job "takes" ten seconds
    pool = HashingPool(HASHER, threads=1, max_waiting=2, timer=lambda: next(ticks))
    try:
        await pool.submit(int)  # one job timed: 10 s on average
        jobs = [pool.submit(gate.wait) for _ in range(3)]  # one running, two waiting
        with pytest.raises(Overloaded) as caught:
            pool.submit(gate.wait)
        # Its place comes after the two waiting jobs and the running one: 3 x 10 s / 1 thread.
        assert caught.value.metadata == {"retry_after": "30"}
        gate.set()
        for job in jobs:
            await job
    finally:
        pool.close()


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        HashingPool(HASHER, threads=-1)


def test_settings_size_the_pool_by_the_cores_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("WATCHWORD_"):
            monkeypatch.delenv(key)
    settings = Settings(hmac_key="0123456789abcdef0123")
    assert settings.password_hash_threads == 0
    assert settings.password_hash_max_waiting == 32
    assert settings.password_hash_niceness == 10
    pool = HashingPool(
        HASHER,
        threads=settings.password_hash_threads,
        max_waiting=settings.password_hash_max_waiting,
    )
    try:
        assert pool.threads == default_thread_count() >= 1
        assert pool.max_waiting == 32
    finally:
        pool.close()
    with pytest.raises(ValueError):
        Settings(hmac_key="0123456789abcdef0123", password_hash_niceness=20)
