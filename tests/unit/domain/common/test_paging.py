"""Page tokens: they resume the query they were made for and nothing else."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from watchword_server.domain.common.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PageTokenInvalid,
    PageTokens,
    page_size,
    split_page,
)
from watchword_server.model.errors import InvalidArgument

TOKENS = PageTokens(b"k" * 32)


def test_page_size_defaults_clamps_and_refuses_negative() -> None:
    assert page_size(0) == DEFAULT_PAGE_SIZE
    assert page_size(7) == 7
    assert page_size(MAX_PAGE_SIZE + 1) == MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument) as caught:
        page_size(-1)
    assert [v.field for v in caught.value.violations] == ["page_size"]


def test_a_token_resumes_its_own_query() -> None:
    token = TOKENS.encode("ListGroups", {"name": "editors"})

    assert TOKENS.decode("ListGroups", token) == {"name": "editors"}
    assert TOKENS.decode("ListGroups", "") is None


def test_a_token_is_refused_by_another_query_another_key_or_when_altered() -> None:
    token = TOKENS.encode("ListUsers:active", {"id": 1})
    flipped = ("A" if token[5] != "A" else "B").join((token[:5], token[6:]))

    for scope, tokens, candidate in [
        ("ListUsers:blocked", TOKENS, token),  # another filter
        ("ListUsers:active", PageTokens(b"x" * 32), token),  # another server's key
        ("ListUsers:active", TOKENS, flipped),  # altered
        ("ListUsers:active", TOKENS, "not base64!"),
        ("ListUsers:active", TOKENS, "AAAA"),  # too short to hold a MAC
    ]:
        with pytest.raises(PageTokenInvalid):
            tokens.decode(scope, candidate)


def test_a_signed_payload_that_is_not_an_object_is_refused() -> None:
    # A list is valid JSON and correctly signed, but not a position.
    with pytest.raises(PageTokenInvalid):
        TOKENS.decode("ListGroups", _signed(TOKENS, "ListGroups", b"[1, 2]"))


def test_positions_after_a_row_round_trip() -> None:
    when, row = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), uuid.uuid4()

    token = TOKENS.encode_after("ListMemberships", when, row)

    assert TOKENS.decode_after("ListMemberships", token) == (when, row)
    assert TOKENS.decode_after("ListMemberships", "") is None
    with pytest.raises(PageTokenInvalid):
        TOKENS.decode_after("ListMemberships", TOKENS.encode("ListMemberships", {"t": "x"}))


def test_split_page_uses_the_extra_row_only_to_tell_that_more_follow() -> None:
    assert split_page([1, 2], 2, str) == ([1, 2], "")
    assert split_page([1, 2, 3], 2, lambda last: f"after {last}") == ([1, 2], "after 2")
    assert split_page([], 2, str) == ([], "")


def _signed(tokens: PageTokens, scope: str, payload: bytes) -> str:
    raw = tokens._mac(scope, payload) + payload  # noqa: SLF001 - forging one on purpose
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
