"""Input checks: every problem of a request is collected, each on its field."""

from __future__ import annotations

from watchword_server.domain.common.validation import (
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    Violations,
)


def _fields(problems: Violations) -> list[str]:
    return [violation.field for violation in problems.items]


def test_every_problem_is_collected_in_order() -> None:
    problems = Violations()

    problems.email("email", "not an address")
    problems.password("password", "short", min_length=8, max_length=64)
    problems.name("first_name", "", required=True)

    assert bool(problems)
    assert _fields(problems) == ["email", "password", "first_name"]
    assert "at least 8" in problems.items[1].description


def test_good_input_adds_nothing() -> None:
    problems = Violations()

    problems.email("email", "ada@example.com")
    problems.login_email("email", "ADA@example.com")
    problems.password("password", "correct horse battery", min_length=8, max_length=64)
    problems.name("first_name", "Ada", required=True)
    problems.name("last_name", "", required=False)

    assert not problems


def test_lengths_are_counted_in_characters_after_normalization() -> None:
    problems = Violations()
    # "é" as e + combining accent is one character once NFC-normalized.
    problems.password("password", "e\u0301" * 8, min_length=8, max_length=8)
    assert not problems

    problems.password("password", "x" * 9, min_length=1, max_length=8)
    assert "at most 8" in problems.items[0].description


def test_limits_and_control_characters() -> None:
    problems = Violations()

    problems.email("email", "a" * (MAX_EMAIL_LENGTH - 11) + "@example.com")
    problems.login_email("login", "ada\x00@example.com")
    problems.name("first_name", "x" * (MAX_NAME_LENGTH + 1), required=True)
    problems.name("last_name", "line\nbreak", required=True)
    problems.required("password", "")

    assert _fields(problems) == ["email", "login", "first_name", "last_name", "password"]
