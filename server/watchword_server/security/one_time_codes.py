"""TOTP codes (RFC 6238: SHA-1, 6 digits, 30-second steps, as every authenticator app
reads them) and recovery codes.

A TOTP code is accepted for the current step or one step either side (clock skew), and
only for a step later than the last one accepted (no replay within its window). Recovery
codes carry 120 random bits: stored as SHA-256 digests (like tokens) they cannot be
brute-forced from a dump (NIST SP 800-63B asks 112 bits for a plain hash).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from datetime import datetime

import pyotp

__all__ = [
    "DIGITS",
    "STEP_SECONDS",
    "matching_step",
    "new_recovery_code",
    "new_totp_secret",
    "normal_recovery_code",
    "otpauth_uri",
]

STEP_SECONDS = 30
DIGITS = 6
_SKEW_STEPS = 1
_RECOVERY_BYTES = 15  # 120 bits: 24 base32 characters
_RECOVERY_GROUP = 4
_SEPARATORS = re.compile(r"[\s-]+")
_CODE = re.compile(rf"^[0-9]{{{DIGITS}}}$")


def new_totp_secret() -> str:
    """A new TOTP secret: 160 random bits (RFC 4226's recommended length), base32."""
    return pyotp.random_base32(length=32)


def otpauth_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/`` URI an authenticator app reads from a QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def matching_step(secret: str, code: str, now: datetime, *, after: int | None) -> int | None:
    """The time step whose code ``code`` is (now, or one step either side), if it is later
    than ``after`` (the last step accepted); None otherwise. Compared in constant time."""
    code = code.strip()
    if not _CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = totp.timecode(now)
    found = None
    # Every candidate is computed and compared, so the time does not tell which matched.
    for step in range(current - _SKEW_STEPS, current + _SKEW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step
    return found


def new_recovery_code() -> str:
    """A new recovery code: lower-case base32 in groups, e.g. ``abcd-efgh-…``."""
    text = base64.b32encode(secrets.token_bytes(_RECOVERY_BYTES)).decode().lower()
    groups = [text[i : i + _RECOVERY_GROUP] for i in range(0, len(text), _RECOVERY_GROUP)]
    return "-".join(groups)


def normal_recovery_code(code: str) -> str:
    """A typed recovery code as it is digested: without spaces and dashes, lower case."""
    return _SEPARATORS.sub("", code).lower()
