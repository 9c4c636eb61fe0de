"""The login throttle's arithmetic: what it asks storage to count, and how long it refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.clock import ManualClock
from tests.support.servers import settings_for
from watchword_server.domain.accounts.throttle import LoginThrottle
from watchword_server.model.errors import TooManyAttempts
from watchword_server.storage.logins import Attempt
from watchword_server.storage.repositories.login_failures import Recent

WINDOW = 900


def _throttle(clock: ManualClock, *, per_email: int = 3, per_client: int = 10) -> LoginThrottle:
    settings = settings_for(
        "sqlite:///unused.db",
        login_max_failures=per_email,
        login_max_failures_per_client=per_client,
        login_failure_window=WINDOW,
    )
    return LoginThrottle(settings, b"k" * 32, clock)


def _email_key(throttle: LoginThrottle, email: str) -> bytes | None:
    query = throttle.query(email, "192.0.2.9")
    assert query is not None
    return query.email_key


def test_the_query_counts_the_window_and_carries_both_limits() -> None:
    clock = ManualClock()
    query = _throttle(clock).query("Ada@Example.com", "192.0.2.1")

    assert query is not None and query.attempt is not None
    assert query.since == clock.now() - timedelta(seconds=WINDOW)
    assert query.client_ip == "192.0.2.1"
    assert (query.attempt.email_limit, query.attempt.client_limit) == (3, 10)
    # The address is counted by a keyed digest of its normalized key, never in clear.
    assert query.email_key == _email_key(_throttle(clock), "ada@example.com")
    assert query.email_key is not None and b"ada" not in query.email_key


def test_a_limit_set_to_zero_is_not_counted_and_both_zero_is_off() -> None:
    clock = ManualClock()
    no_client = _throttle(clock, per_client=0).query("ada@example.com", "192.0.2.1")
    assert no_client is not None and no_client.client_ip == ""
    no_email = _throttle(clock, per_email=0).query("ada@example.com", "192.0.2.1")
    assert no_email is not None and no_email.email_key is None

    off = _throttle(clock, per_email=0, per_client=0)
    assert not off.enabled
    assert off.query("ada@example.com", "192.0.2.1") is None


def test_a_reserved_place_passes_and_a_refusal_says_when_the_oldest_failure_expires() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    now = clock.now()
    throttle.refuse_unless_reserved(None)
    throttle.refuse_unless_reserved(Attempt(Recent(2, now, 0, None), reserved=7))

    oldest = now - timedelta(seconds=WINDOW - 90)  # leaves the window in 90 s
    with pytest.raises(TooManyAttempts) as caught:
        throttle.refuse_unless_reserved(Attempt(Recent(3, oldest, 3, oldest), reserved=None))
    assert caught.value.metadata == {"retry_after": "90"}


def test_the_retry_delay_is_the_later_of_both_limits_and_at_least_a_second() -> None:
    clock = ManualClock()
    throttle = _throttle(clock, per_email=3, per_client=5)
    now = clock.now()
    email_oldest = now - timedelta(seconds=WINDOW - 10)
    client_oldest = now - timedelta(seconds=WINDOW - 300)

    with pytest.raises(TooManyAttempts) as both:
        throttle.refuse_unless_reserved(
            Attempt(Recent(3, email_oldest, 5, client_oldest), reserved=None)
        )
    assert both.value.metadata == {"retry_after": "300"}

    expired = now - timedelta(seconds=WINDOW + 5)  # already out: never less than 1 s
    with pytest.raises(TooManyAttempts) as soon:
        throttle.refuse_unless_reserved(Attempt(Recent(3, expired, 0, None), reserved=None))
    assert soon.value.metadata == {"retry_after": "1"}


def test_a_correct_password_clears_the_address_only_when_it_has_failures() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    now = clock.now()

    assert throttle.to_forget("ada@example.com", Attempt(Recent(0, None, 4, now), 1)) is None
    key = throttle.to_forget("ada@example.com", Attempt(Recent(2, now, 2, now), 1))
    assert key is not None and key == _email_key(throttle, "ada@example.com")
    assert _throttle(clock, per_email=0).to_forget("ada@example.com", None) is None
