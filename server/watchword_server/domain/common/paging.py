"""Opaque, tamper-evident page tokens for the List RPCs (keyset paging, never offsets)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from watchword_server.model.errors import FieldViolation, InvalidArgument, Reason

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "PageTokenInvalid",
    "PageTokens",
    "page_size",
    "split_page",
]

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class PageTokenInvalid(InvalidArgument):
    """The token was not made by this service for this very query."""

    def __init__(self) -> None:
        super().__init__(
            [FieldViolation("page_token", "the page token is invalid for this request")],
            reason=Reason.PAGE_TOKEN_INVALID,
            message_key="page_token_invalid",
        )


def page_size(requested: int) -> int:
    """The page size to use: 0 means the default; above the maximum is clamped."""
    if requested < 0:
        raise InvalidArgument([FieldViolation("page_size", "page_size must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


@dataclass(frozen=True)
class PageTokens:
    """Signs and checks page tokens with a key of the server's.

    A token names the query it belongs to (``scope``: the RPC and its filters), so it
    cannot be replayed against another query, and carries the last row's sort key.
    """

    key: bytes

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self.key, scope.encode() + b"\x00" + payload, hashlib.sha256).digest()[:16]

    def encode(self, scope: str, position: Mapping[str, Any]) -> str:
        """A token that resumes ``scope`` after ``position``."""
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
        raw = self._mac(scope, payload) + payload
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def encode_after(self, scope: str, create_time: datetime, row_id: uuid.UUID) -> str:
        """A token that resumes after the row with this ``(create_time, id)``."""
        return self.encode(scope, {"t": create_time.isoformat(), "id": str(row_id)})

    def decode_after(self, scope: str, token: str) -> tuple[datetime, uuid.UUID] | None:
        """The ``(create_time, id)`` in a token made by ``encode_after``."""
        position = self.decode(scope, token)
        if position is None:
            return None
        try:
            return datetime.fromisoformat(position["t"]), uuid.UUID(position["id"])
        except (KeyError, TypeError, ValueError):
            raise PageTokenInvalid() from None

    def decode(self, scope: str, token: str) -> dict[str, Any] | None:
        """The position in ``token``, or None for an empty token (the first page).

        Raises:
            PageTokenInvalid: the token is malformed, forged or from another query.
        """
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise PageTokenInvalid() from None
        mac, payload = raw[:16], raw[16:]
        if len(mac) < 16 or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise PageTokenInvalid()
        try:
            position = json.loads(payload)
        except ValueError:
            raise PageTokenInvalid() from None
        if not isinstance(position, dict):
            raise PageTokenInvalid()
        return position


def split_page(
    rows: Sequence[T], limit: int, token_after: Callable[[T], str]
) -> tuple[list[T], str]:
    """Cut rows fetched with ``limit + 1`` into a page and the next page's token.

    The extra row only tells that another page exists; the token resumes after the
    page's last row ("" when this page is the last).
    """
    if len(rows) <= limit:
        return list(rows), ""
    page = list(rows[:limit])
    return page, token_after(page[-1])
