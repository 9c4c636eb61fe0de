"""Typed SQLAlchemy models: the schema that the migrations create.

Timestamps are computed in Python from the server's clock (never the database's ``now()``)
so that tests can drive time, and they are always timezone-aware (see ``UTCDateTime``).
Secrets (session tokens, account keys, service keys, recovery codes, login challenges) are
stored only as SHA-256 digests; TOTP secrets, which must be read back, only sealed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, Uuid

__all__ = [
    "AccountKey",
    "Base",
    "EmmettImport",
    "Event",
    "Group",
    "LoginFailure",
    "MailOutbox",
    "RecoveryCode",
    "SecondFactorChallenge",
    "Membership",
    "Passkey",
    "PasskeyChallenge",
    "Permission",
    "ServiceKey",
    "Session",
    "TotpFactor",
    "User",
    "UTCDateTime",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the constraint naming convention used by migrations."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An account; ``email`` is stored as given (in NFC), and ``email_key`` (see
    ``model/email_addresses.py``) makes it unique whatever its case or Unicode form."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(Text)
    first_name: Mapped[str] = mapped_column(String(128), default="")
    last_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), index=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    update_time: Mapped[datetime] = mapped_column(UTCDateTime)


Index("uq_users_email_key", User.email_key, unique=True)


class Session(Base):
    """A login session; the token itself is never stored, only its digest."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # Inactivity window in seconds: session_expiration, or session_long_expiration with remember.
    lifetime: Mapped[int] = mapped_column(Integer)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_time: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountKey(Base):
    """A mailed single-use key (e-mail verification or password reset), stored as a digest."""

    __tablename__ = "account_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime] = mapped_column(UTCDateTime)
    used_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Group(Base):
    """A named group (the auth module's ``role``); names are unique and case-sensitive."""

    __tablename__ = "groups"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


class Membership(Base):
    """A user's membership of a group."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "group_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


class Permission(Base):
    """A grant to a group; empty ``table_name`` / ``record_id`` are wildcards."""

    __tablename__ = "permissions"
    __table_args__ = (
        Index("ix_permissions_name_group", "name", "group_id"),
        UniqueConstraint("group_id", "name", "table_name", "record_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    group_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255), default="")
    record_id: Mapped[str] = mapped_column(String(255), default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


class Event(Base):
    """An audit event; kept when its user is deleted (``user_id`` is not a foreign key)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_id_id", "user_id", "id"),
        Index("ix_events_kind_id", "kind", "id"),
    )

    # Monotonic ids give a stable order for paging and for streaming to watchers.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    origin: Mapped[str] = mapped_column(String(255), default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    # An application's detail (LogEvent); the server default fills rows written without it
    # (ours, the Emmett import's, and those of a server older than this column).
    data: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )


class ServiceKey(Base):
    """A key that a calling service presents; only the secret's digest is stored."""

    __tablename__ = "service_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    key_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The subject of the verified client certificate the key is accepted from (RFC 4514,
    # as gRPC reports it); NULL: from any client.
    client_subject: Mapped[str | None] = mapped_column(Text, nullable=True)


class MailOutbox(Base):
    """A mail written in the same transaction as its cause and delivered in the background."""

    __tablename__ = "mail_outbox"
    __table_args__ = (Index("ix_mail_outbox_pending", "sent_time", "next_attempt_time"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(320))
    # Values to render the mail with when it is sent. Never a key in clear: a mailed key is
    # derived again at send time from its account_keys row and the pepper.
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_time: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when the mail was given up after too many failed attempts.
    dead_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginFailure(Base):
    """A failed password check, kept for a while to throttle guessing.

    ``email_key`` is a digest of the address's key, so unknown addresses are counted
    like known ones (throttling must not tell which accounts exist).
    """

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_email_key_time", "email_key", "create_time"),
        Index("ix_login_failures_client_ip_time", "client_ip", "create_time"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    email_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


class EmmettImport(Base):
    """One row of an Emmett database that ``watchword import-emmett`` brought in, and the
    row it became: a second run skips what is here, so it changes nothing.

    ``source`` names the Emmett database (its URL without password, or ``--source``);
    ``kind`` is user, group, membership, permission or event; the ids are text, as the
    two sides' keys differ (Emmett's integers, Watchword's UUIDs and event numbers).
    """

    __tablename__ = "emmett_imports"

    source: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


class TotpFactor(Base):
    """A user's TOTP second factor. The secret is sealed (AES-GCM, see
    ``security/secret_box.py``) under a key derived from the pepper named by ``key_id``, so
    a dump of the database holds no secret in clear; ``confirmed_time`` NULL means enrolled
    but not yet confirmed (not asked for at login). ``last_used_step`` is the time step of
    the last code accepted: a code is accepted only for a later step (no replay)."""

    __tablename__ = "totp_factors"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    sealed_secret: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class RecoveryCode(Base):
    """A single-use recovery code, stored only as a digest (the codes carry 120 random
    bits, so a plain SHA-256 is enough, as for tokens)."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    used_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SecondFactorChallenge(Base):
    """A login waiting for its second factor: what a correct password got instead of a
    session. Only the challenge's digest is stored; ``credential_digest`` is a digest of the
    password hash that was checked, so a password changed meanwhile voids the challenge."""

    __tablename__ = "second_factor_challenges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    challenge_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    credential_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime] = mapped_column(UTCDateTime)


class Passkey(Base):
    """A user's WebAuthn credential: its id and public key (no secret: the private key
    never leaves the authenticator), and the signature counter last seen."""

    __tablename__ = "passkeys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # WebAuthn credential ids are at most 1023 bytes; one credential, one passkey.
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    name: Mapped[str] = mapped_column(String(100))
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PasskeyChallenge(Base):
    """A WebAuthn ceremony under way: its challenge's digest (never the challenge), what
    it is for, and whom. Deleted when it is answered, right or wrong."""

    __tablename__ = "passkey_challenges"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    challenge_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    # Registration: the logged-in user. Login: the named address's user, if any.
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    # Login: the address given ("" for a discoverable credential), for the throttle.
    email: Mapped[str] = mapped_column(String(320), default="")
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    expire_time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
