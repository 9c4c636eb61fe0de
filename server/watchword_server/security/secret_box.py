"""Secrets that must be read back (TOTP seeds), sealed with AES-256-GCM under the pepper.

The sealing key of each pepper is derived from it (HMAC-SHA256 with a fixed label), so a
database dump alone opens nothing, and a secret follows the pepper's rotation: what was
sealed under a retired pepper opens while that pepper is in the key ring, and is sealed
again under the current one when it is next used (``needs_reseal``). The user's id is the
associated data: a sealed secret copied to another user's row does not open there.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from watchword_server.security.keyring import KeyRing

__all__ = ["SealedSecret", "SecretBox"]

_LABEL = b"watchword second-factor secret sealing key v1"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class SealedSecret:
    """A sealed secret (nonce then ciphertext and tag) and the id of its pepper."""

    key_id: str
    blob: bytes


class SecretBox:
    """Seals and opens secrets with keys derived from the key ring's peppers."""

    def __init__(self, keyring: KeyRing) -> None:
        self._current_id = keyring.current_id
        self._ciphers = {
            key_id: AESGCM(hmac.new(key, _LABEL, hashlib.sha256).digest())
            for key_id, key in keyring.keys.items()
        }

    def seal(self, secret: str, context: bytes) -> SealedSecret:
        """Seal ``secret`` under the current pepper, bound to ``context`` (the owner's id)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self._current_id].encrypt(nonce, secret.encode(), context)
        return SealedSecret(self._current_id, nonce + sealed)

    def open(self, sealed: SealedSecret, context: bytes) -> str | None:
        """The secret, or None when its pepper is no longer in the key ring or it was
        tampered with (or belongs to another ``context``)."""
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None or len(sealed.blob) <= _NONCE_BYTES:
            return None
        nonce, body = sealed.blob[:_NONCE_BYTES], sealed.blob[_NONCE_BYTES:]
        try:
            return cipher.decrypt(nonce, body, context).decode()
        except InvalidTag:
            return None

    def needs_reseal(self, sealed: SealedSecret) -> bool:
        """Whether ``sealed`` is under a retired pepper."""
        return sealed.key_id != self._current_id
