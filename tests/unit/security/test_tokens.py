"""Tests for opaque token generation and digests."""

from __future__ import annotations

import base64
import hashlib

from watchword_server.security.tokens import digests_equal, new_token, token_digest


def test_new_token_has_256_bits() -> None:
    token = new_token()
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == 32


def test_new_token_is_url_safe() -> None:
    token = new_token()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_new_tokens_differ() -> None:
    assert len({new_token() for _ in range(100)}) == 100


def test_token_digest_is_sha256_of_utf8() -> None:
    assert token_digest("abc") == hashlib.sha256(b"abc").digest()
    assert len(token_digest(new_token())) == 32


def test_token_digest_is_deterministic() -> None:
    token = new_token()
    assert token_digest(token) == token_digest(token)
    assert token_digest(token) != token_digest(token + "x")


def test_digests_equal() -> None:
    token = new_token()
    assert digests_equal(token_digest(token), token_digest(token))
    assert not digests_equal(token_digest(token), token_digest(new_token()))
    assert not digests_equal(token_digest(token), b"")
