"""Opaque bearer tokens: generation, the digest that is stored, and comparison.

Tokens carry 256 bits of randomness, so a plain SHA-256 digest is enough to
store them: there is nothing to brute-force, no pepper is needed, and pepper
rotation can never invalidate an outstanding token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["derived_token", "digests_equal", "new_token", "token_digest"]

_TOKEN_BYTES = 32


def new_token() -> str:
    """Generate a new random token.

    Returns:
        A URL-safe base64 string encoding 32 random bytes (256 bits).
    """
    return secrets.token_urlsafe(_TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    """Compute the digest under which a token is stored and looked up.

    Args:
        token: The token as handed to the client.

    Returns:
        The 32-byte SHA-256 digest of the UTF-8 encoded token.
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


def digests_equal(a: bytes, b: bytes) -> bool:
    """Compare two token digests in constant time.

    Args:
        a: First digest.
        b: Second digest.

    Returns:
        True when both digests are identical.
    """
    return hmac.compare_digest(a, b)


def derived_token(secret: bytes, purpose: str, ident: bytes) -> str:
    """A token that only the holder of ``secret`` can compute again from ``ident``.

    Mailed keys use it: the database keeps only the key's id and digest, and the mail
    sender derives the key again at send time, so no key is ever stored in clear.
    """
    mac = hmac.new(secret, purpose.encode() + b"\x00" + ident, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
