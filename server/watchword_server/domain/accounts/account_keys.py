"""Mailed single-use keys (e-mail verification, password reset) and the mails carrying them.

A key is derived from the pepper and its row's id, so the database keeps only the id and
the key's digest: the mail sender derives the key again when it sends the mail.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import timedelta

from watchword_server.config import Settings
from watchword_server.domain.common import outbox
from watchword_server.domain.common.clock import Clock
from watchword_server.model.mail import OutgoingMail
from watchword_server.model.records import UserRecord
from watchword_server.security.keyring import KeyRing
from watchword_server.security.tokens import derived_token, token_digest
from watchword_server.storage.db import Connection
from watchword_server.storage.repositories import account_keys as key_rows
from watchword_server.templates import render

__all__ = ["MailedKeys", "Purpose"]

_MAX_KEY_LENGTH = 256


class Purpose(enum.StrEnum):
    """What a key is for; also the kind of the mail that carries it."""

    VERIFICATION = "verification"
    RESET = "reset"


class MailedKeys:
    """Issues and consumes keys, and renders the mails that carry them."""

    def __init__(self, settings: Settings, keyring: KeyRing, clock: Clock) -> None:
        self._settings = settings
        self._keyring = keyring
        self._clock = clock

    def _ttl(self, purpose: Purpose) -> timedelta:
        seconds = (
            self._settings.verification_key_ttl
            if purpose is Purpose.VERIFICATION
            else self._settings.reset_key_ttl
        )
        return timedelta(seconds=seconds)

    async def issue(self, conn: Connection, user: UserRecord, purpose: Purpose) -> None:
        """Make a new key for ``user`` (voiding older ones) and queue its mail, in ``conn``."""
        now = self._clock.now()
        key_id = uuid.uuid4()
        key = derived_token(self._keyring.current, purpose.value, key_id.bytes)
        await key_rows.void_unused(conn, user.id, purpose.value)
        await key_rows.insert_key(
            conn,
            key_id=key_id,
            user_id=user.id,
            purpose=purpose.value,
            key_digest=token_digest(key),
            now=now,
            expire_time=now + self._ttl(purpose),
        )
        await outbox.enqueue(
            conn,
            kind=purpose.value,
            recipient=user.email,
            context={
                "key_id": str(key_id),
                "pepper_id": self._keyring.current_id,
                "email": user.email,
                "first_name": user.first_name,
                "last_name": user.last_name,
            },
            now=now,
        )

    async def consume(self, conn: Connection, key: str, purpose: Purpose) -> uuid.UUID | None:
        """Use ``key`` once; returns its user's id, or None if it is not a live key."""
        if not key or len(key) > _MAX_KEY_LENGTH:
            return None
        return await key_rows.consume(conn, token_digest(key), purpose.value, self._clock.now())

    async def live_owner(self, conn: Connection, key: str, purpose: Purpose) -> uuid.UUID | None:
        """The user whose ``key`` could be consumed now, if it could (it is checked again
        when consumed)."""
        if not key or len(key) > _MAX_KEY_LENGTH:
            return None
        now = self._clock.now()
        return await key_rows.live_owner(conn, token_digest(key), purpose.value, now)

    async def render(self, kind: str, recipient: str, context: Mapping[str, str]) -> OutgoingMail:
        """Build the mail for an outbox row: derive its key, fill in the link and texts."""
        purpose = Purpose(kind)
        secret = self._keyring.keys[context["pepper_id"]]
        key = derived_token(secret, purpose.value, uuid.UUID(context["key_id"]).bytes)
        settings = self._settings
        messages = settings.messages
        if purpose is Purpose.VERIFICATION:
            url = settings.verification_url
            subject, body = messages.registration_email_subject, messages.registration_email_text
        else:
            url = settings.reset_url
            subject, body = (
                messages.reset_password_email_subject,
                messages.reset_password_email_text,
            )
        link = url.replace("{key}", key)
        values = {**context, "link": link}
        return OutgoingMail(
            kind=kind,
            recipient=recipient,
            subject=render(subject, values),
            body=render(body, values),
            context={**context, "link": link, "key": key},
        )
