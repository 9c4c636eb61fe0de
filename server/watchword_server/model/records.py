"""Plain value types shared by the domain, storage and transport layers."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

__all__ = [
    "CallContext",
    "EventKind",
    "EventRecord",
    "GroupRecord",
    "MembershipRecord",
    "PasskeyRecord",
    "PermissionRecord",
    "Scope",
    "SecondFactorMethod",
    "Grant",
    "SessionGrant",
    "UserRecord",
    "UserStatus",
]


class Scope(enum.StrEnum):
    """What a service key may call: ``access`` checks, or everything with ``admin``."""

    ACCESS = "access"
    ADMIN = "admin"

    def includes(self, other: Scope) -> bool:
        """Whether a key of this scope may call what ``other`` requires."""
        return self is Scope.ADMIN or other is Scope.ACCESS


class UserStatus(enum.StrEnum):
    """An account's state; stored as these lowercase words."""

    ACTIVE = "active"
    PENDING_VERIFICATION = "pending_verification"
    PENDING_APPROVAL = "pending_approval"
    DISABLED = "disabled"
    BLOCKED = "blocked"


class EventKind(enum.StrEnum):
    """What an audit event records; mirrors the proto ``EventKind`` (a test pins the match)."""

    REGISTRATION = "registration"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    EMAIL_VERIFICATION = "email_verification"
    PASSWORD_RETRIEVAL = "password_retrieval"
    PASSWORD_RESET = "password_reset"
    PASSWORD_CHANGE = "password_change"
    PROFILE_UPDATE = "profile_update"
    USER_CREATED = "user_created"
    USER_UPDATED = "user_updated"
    USER_DELETED = "user_deleted"
    USER_DISABLED = "user_disabled"
    USER_BLOCKED = "user_blocked"
    USER_ALLOWED = "user_allowed"
    USER_APPROVED = "user_approved"
    SESSIONS_REVOKED = "sessions_revoked"
    GROUP_CREATED = "group_created"
    GROUP_DELETED = "group_deleted"
    MEMBERSHIP_ADDED = "membership_added"
    MEMBERSHIP_REMOVED = "membership_removed"
    PERMISSION_ADDED = "permission_added"
    PERMISSION_REMOVED = "permission_removed"
    APPLICATION = "application"
    TOTP_ENROLLMENT_STARTED = "totp_enrollment_started"
    TOTP_ENABLED = "totp_enabled"
    TOTP_DISABLED = "totp_disabled"
    RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated"
    SECOND_FACTOR_REQUIRED = "second_factor_required"
    SECOND_FACTOR_FAILED = "second_factor_failed"
    RECOVERY_CODE_USED = "recovery_code_used"
    SECOND_FACTORS_RESET = "second_factors_reset"
    PASSKEY_REGISTERED = "passkey_registered"
    PASSKEY_DELETED = "passkey_deleted"
    PASSKEY_LOGIN = "passkey_login"
    PASSKEY_LOGIN_FAILED = "passkey_login_failed"


class SecondFactorMethod(enum.StrEnum):
    """A way to prove a login's second factor; mirrors the proto ``SecondFactorMethod``."""

    TOTP = "totp"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey"


@dataclass(frozen=True)
class UserRecord:
    """An account as the outside world may see it (no password hash)."""

    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    status: UserStatus
    email_verified: bool
    create_time: datetime
    update_time: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionGrant:
    """A session as handed to its owner: the token in clear (only this once) and its expiry."""

    token: str
    expire_time: datetime


@dataclass(frozen=True)
class CallContext:
    """Who is calling: the end user's address (as the backend reports it) and the origin."""

    client_ip: str = ""
    origin: str = "auth"


@dataclass(frozen=True)
class EventRecord:
    """One audit event as stored."""

    id: int
    user_id: uuid.UUID | None
    kind: EventKind
    description: str
    client_ip: str
    origin: str
    create_time: datetime
    # An application's structured detail (AdminService.LogEvent); {} for our own events.
    data: dict[str, Any] = field(default_factory=dict)


class Grant(NamedTuple):
    """What a permission check asks about: a name on a table's record ("" = none).

    A named tuple, not a frozen dataclass: one is made for every permission check."""

    name: str
    table_name: str
    record_id: str


@dataclass(frozen=True)
class GroupRecord:
    """A group of users, which permissions are granted to."""

    id: uuid.UUID
    name: str
    description: str
    create_time: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MembershipRecord:
    """A membership, with its group's name."""

    id: uuid.UUID
    group: str
    user_id: uuid.UUID
    create_time: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PermissionRecord:
    """A grant, with its group's name."""

    id: uuid.UUID
    group: str
    name: str
    table_name: str
    record_id: str
    create_time: datetime
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PasskeyRecord:
    """A user's registered WebAuthn credential, as its owner sees it (no key material)."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    create_time: datetime
    last_used_time: datetime | None
