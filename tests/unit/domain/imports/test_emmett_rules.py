"""How Emmett 2.8's values become Watchword's (statuses, grants, event kinds, fields)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watchword_server.config import CustomField, Messages
from watchword_server.domain.imports import emmett_rules as rules
from watchword_server.model.emmett import EmmettPermission, EmmettUser
from watchword_server.model.records import EventKind, UserStatus


def _user(**fields: object) -> EmmettUser:
    values: dict[str, object] = {
        "id": 1,
        "email": "ada@example.com",
        "password": "pbkdf2(2000,20,sha512)$abc$00",
        "registration_key": "",
        "reset_password_key": "",
        "first_name": "Ada",
        "last_name": "L",
        "created_at": None,
        "updated_at": None,
    }
    values.update(fields)
    return EmmettUser(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("", UserStatus.ACTIVE),
        ("pending", UserStatus.PENDING_APPROVAL),
        ("disabled", UserStatus.DISABLED),
        ("blocked", UserStatus.BLOCKED),
        ("5e934323-05c8-4b5c-a7f2-59075273f381", UserStatus.PENDING_VERIFICATION),
        ("anything else", UserStatus.PENDING_VERIFICATION),  # Emmett's login refuses it so
    ],
)
def test_statuses(key: str, status: UserStatus) -> None:
    assert rules.status_of(key) is status


@pytest.mark.parametrize(
    ("table", "record", "fields"),
    [
        (None, 0, ("", "")),
        ("", 0, ("", "")),
        ("posts", 0, ("posts", "")),
        (None, 5, ("", "5")),
        ("Preference", 7, ("Preference", "7")),
        ("posts", None, ("posts", "")),
    ],
)
def test_grant_fields(table: str | None, record: int | None, fields: tuple[str, str]) -> None:
    grant = EmmettPermission(1, 1, "read", table, record, None)
    assert rules.grant_fields(grant) == fields
    assert rules.is_wildcard(*fields) is ("" in fields)


def test_event_kinds_by_emmett_text_or_by_the_carried_over_message() -> None:
    messages = Messages()
    assert rules.event_kind("User {id} logged in", messages) is EventKind.LOGIN
    assert (
        rules.event_kind("Verification email sent to user {id}", messages)
        is EventKind.EMAIL_VERIFICATION
    )
    assert rules.event_kind("Nightly export ran", messages) is None
    custom = Messages(login_log="{id} came in")
    assert rules.event_kind("{id} came in", custom) is EventKind.LOGIN
    assert rules.event_description("User {id} logged in", "u-1") == "User u-1 logged in"
    assert rules.event_description("odd {", "u-1") == "odd {"


def test_passwords_are_kept_or_marked_unusable() -> None:
    assert rules.password_hash(_user()) == "pbkdf2(2000,20,sha512)$abc$00"
    assert rules.password_hash(_user(password="")) == rules.NO_PASSWORD
    assert rules.is_legacy_hash("pbkdf2(2000,20,sha512)$abc$00")
    assert not rules.is_legacy_hash("sha512$abc$00")


def test_times_are_utc() -> None:
    default = datetime(2026, 1, 1, tzinfo=UTC)
    assert rules.utc(None, default) == default
    assert rules.utc(datetime(2025, 5, 1, 12), default) == datetime(2025, 5, 1, 12, tzinfo=UTC)


def test_extra_columns_become_declared_custom_fields() -> None:
    declared = [
        CustomField(name="karma", type="integer"),
        CustomField(name="newsletter", type="boolean"),
        CustomField(name="phone"),
    ]
    user = _user(extra={"karma": "42", "newsletter": "T", "phone": 5550100, "nickname": "x"})
    assert rules.user_extra(user, declared) == (
        {"karma": 42, "newsletter": True, "phone": "5550100"},
        [],
    )
    assert rules.user_extra(_user(extra={"newsletter": "F", "karma": None}), declared) == (
        {"newsletter": False},
        [],
    )
    extra, problems = rules.user_extra(_user(extra={"karma": "many", "newsletter": "?"}), declared)
    assert extra == {}
    assert problems == [
        "extra.karma: karma must be a valid integer",
        "extra.newsletter: newsletter must be a valid boolean",
    ]
