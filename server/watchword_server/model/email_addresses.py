"""One address, one account: how e-mail addresses are stored and compared.

An address is stored as given, in Unicode NFC (composed) form. Two addresses name the same
account when their keys are equal: NFC, then Unicode case folding, then NFC again (folding
can decompose). So ``İlse@…`` and ``i̇lse@…``, ``Straße@…`` and ``STRASSE@…``, and a composed
and a decomposed ``é`` are one account each. The key is computed here, in Python, and kept
in its own unique column (``users.email_key``): the databases' own ``lower()`` disagree with
each other and with Python outside ASCII.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_KEY_BYTES", "email_key", "stored_email"]

MAX_KEY_BYTES = 1000
"""The longest key the unique index takes with room to spare (PostgreSQL's B-tree entries
stop near 2,700 bytes); only addresses no mail system accepts come near it."""


def stored_email(address: str) -> str:
    """``address`` as it is stored and shown: NFC."""
    return unicodedata.normalize("NFC", address)


def email_key(address: str) -> str:
    """The form under which ``address`` is unique: equal keys, one account."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", address).casefold())
