"""Change notices on the wire: what a change names survives encoding, and anything
unreadable or too long means "everything changed"."""

from __future__ import annotations

import uuid

import pytest

from watchword_server.domain.access.changes import Change, is_revision


def test_a_change_survives_its_notification() -> None:
    change = Change(
        users=frozenset({uuid.uuid4(), uuid.uuid4()}),
        sessions=frozenset({b"\x00\xff" * 16}),
        permission_names=frozenset({"edit", 'odd "name" ü'}),
        groups=frozenset({"ops"}),
        keys=frozenset({uuid.uuid4()}),
    )
    assert Change.decode(change.encode()) == change
    assert Change.decode(Change(everything=True).encode()).everything


def test_a_change_too_long_for_a_notification_becomes_everything() -> None:
    huge = Change(permission_names=frozenset(f"permission-{i:05d}" for i in range(2000)))
    assert Change.decode(huge.encode()).everything


@pytest.mark.parametrize(
    "body", ["", "not json", "[]", '{"u": ["not-a-uuid"]}', '{"s": ["zz"]}', '{"n": [1]}']
)
def test_an_unreadable_notification_means_everything_changed(body: str) -> None:
    assert Change.decode(body).everything


@pytest.mark.parametrize("text", ["x1", "x18446744073709551615", "s3"])
def test_revisions_we_hand_out_are_recognised(text: str) -> None:
    assert is_revision(text)


@pytest.mark.parametrize("text", ["", "x", "y1", "x-1", "x1.5", "x" + "9" * 21, " x1"])
def test_anything_else_is_not_a_revision(text: str) -> None:
    assert not is_revision(text)
