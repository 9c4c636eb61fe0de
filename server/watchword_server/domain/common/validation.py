"""Input checks that produce field violations (INVALID_ARGUMENT with BadRequest details)."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from watchword_server.model.email_addresses import MAX_KEY_BYTES, email_key
from watchword_server.model.errors import FieldViolation

__all__ = ["MAX_EMAIL_LENGTH", "MAX_NAME_LENGTH", "Violations"]

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 128


class Violations:
    """Collects every problem of a request, so the caller learns them all in one answer."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        """Record that ``field`` is bad because of ``description``."""
        self.items.append(FieldViolation(field, description))

    def __bool__(self) -> bool:
        return bool(self.items)

    def required(self, field: str, value: str) -> bool:
        """Check that ``value`` is present; returns whether it is."""
        if not value:
            self.add(field, f"{field} is required")
            return False
        return True

    def email(self, field: str, value: str) -> None:
        """Check a well-formed address (syntax only: no DNS lookups)."""
        if not self.required(field, value):
            return
        if len(value) > MAX_EMAIL_LENGTH or len(email_key(value).encode()) > MAX_KEY_BYTES:
            self.add(field, f"{field} must be at most {MAX_EMAIL_LENGTH} characters")
            return
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as error:
            self.add(field, f"{field} is not a valid e-mail address: {error}")

    def login_email(self, field: str, value: str) -> None:
        """Check an address given to log in: present, of a possible length, storable."""
        if not self.required(field, value):
            return
        if (
            len(value) > MAX_EMAIL_LENGTH
            or "\x00" in value
            or len(email_key(value).encode()) > MAX_KEY_BYTES
        ):
            self.add(field, f"{field} is not a valid e-mail address")

    def password(self, field: str, value: str, *, min_length: int, max_length: int) -> None:
        """Check a new password's length in characters (not bytes)."""
        if not self.required(field, value):
            return
        length = len(unicodedata.normalize("NFC", value))
        if length < min_length:
            self.add(field, f"{field} must be at least {min_length} characters long")
        elif length > max_length:
            self.add(field, f"{field} must be at most {max_length} characters long")

    def name(self, field: str, value: str, *, required: bool) -> None:
        """Check a first or last name."""
        if required and not self.required(field, value.strip()):
            return
        if len(value) > MAX_NAME_LENGTH:
            self.add(field, f"{field} must be at most {MAX_NAME_LENGTH} characters")
        elif any(unicodedata.category(char) == "Cc" for char in value):
            self.add(field, f"{field} must not contain control characters")
