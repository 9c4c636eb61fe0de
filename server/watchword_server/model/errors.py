"""Domain errors. Each carries a reason (the proto ErrorReason without its prefix); the
transport layer alone turns them into gRPC statuses."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "AccountBlocked",
    "AccountDisabled",
    "AccountPendingApproval",
    "AccountPendingVerification",
    "DependencyUnavailable",
    "DomainError",
    "EmailAlreadyExists",
    "FieldViolation",
    "GroupAlreadyExists",
    "GroupNotFound",
    "HookFailed",
    "HookRefused",
    "InvalidArgument",
    "InvalidCredentials",
    "MembershipNotFound",
    "Overloaded",
    "PasskeyAlreadyRegistered",
    "PasskeyNotFound",
    "PasswordIncorrect",
    "PermissionNotFound",
    "Reason",
    "ResetKeyInvalid",
    "SecondFactorInvalid",
    "RpcDisabled",
    "RpcUnimplemented",
    "SecondFactorInvalid",
    "SessionInvalid",
    "ShuttingDown",
    "StreamOverflowed",
    "TooManyAttempts",
    "TotpAlreadyEnabled",
    "TotpNotEnabled",
    "UserNotFound",
    "VerificationKeyInvalid",
]


class Reason(enum.StrEnum):
    """Why a call failed; mirrors the proto ``ErrorReason`` enum (a test pins the match)."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    EMAIL_ALREADY_EXISTS = "EMAIL_ALREADY_EXISTS"
    GROUP_ALREADY_EXISTS = "GROUP_ALREADY_EXISTS"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    GROUP_NOT_FOUND = "GROUP_NOT_FOUND"
    PERMISSION_NOT_FOUND = "PERMISSION_NOT_FOUND"
    MEMBERSHIP_NOT_FOUND = "MEMBERSHIP_NOT_FOUND"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    SESSION_INVALID = "SESSION_INVALID"
    VERIFICATION_KEY_INVALID = "VERIFICATION_KEY_INVALID"
    RESET_KEY_INVALID = "RESET_KEY_INVALID"
    PASSWORD_INCORRECT = "PASSWORD_INCORRECT"
    ACCOUNT_PENDING_VERIFICATION = "ACCOUNT_PENDING_VERIFICATION"
    ACCOUNT_PENDING_APPROVAL = "ACCOUNT_PENDING_APPROVAL"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
    ACCOUNT_BLOCKED = "ACCOUNT_BLOCKED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    SERVICE_KEY_MISSING = "SERVICE_KEY_MISSING"
    SERVICE_KEY_INVALID = "SERVICE_KEY_INVALID"
    SCOPE_INSUFFICIENT = "SCOPE_INSUFFICIENT"
    RPC_DISABLED = "RPC_DISABLED"
    RPC_UNIMPLEMENTED = "RPC_UNIMPLEMENTED"
    PAGE_TOKEN_INVALID = "PAGE_TOKEN_INVALID"
    STREAM_OVERFLOW = "STREAM_OVERFLOW"
    SHUTTING_DOWN = "SHUTTING_DOWN"
    OVERLOADED = "OVERLOADED"
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    SECOND_FACTOR_INVALID = "SECOND_FACTOR_INVALID"
    TOTP_ALREADY_ENABLED = "TOTP_ALREADY_ENABLED"
    TOTP_NOT_ENABLED = "TOTP_NOT_ENABLED"
    PASSKEY_ALREADY_REGISTERED = "PASSKEY_ALREADY_REGISTERED"
    PASSKEY_NOT_FOUND = "PASSKEY_NOT_FOUND"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. ``email``) and what is wrong with it."""

    field: str
    description: str


class DomainError(Exception):
    """Base of every expected failure.

    Attributes:
        reason: the machine-readable reason.
        message_key: the ``messages`` setting that holds the user-facing text.
        message_args: values for that text's ``{placeholders}``.
        metadata: extra ``ErrorInfo`` metadata (never secrets).
    """

    reason: Reason = Reason.INVALID_ARGUMENT
    message_key: str = "invalid_argument"

    def __init__(
        self,
        detail: str = "",
        *,
        message_args: Mapping[str, object] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.reason.value)
        self.detail = detail
        self.message_args: Mapping[str, object] = message_args or {}
        self.metadata: Mapping[str, str] = metadata or {}


class InvalidArgument(DomainError):
    """The request has bad fields; ``violations`` says which and why."""

    def __init__(
        self,
        violations: Sequence[FieldViolation],
        *,
        reason: Reason = Reason.INVALID_ARGUMENT,
        message_key: str = "invalid_argument",
        message_args: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(
            "; ".join(f"{v.field}: {v.description}" for v in violations),
            message_args=message_args,
        )
        self.violations = tuple(violations)
        self.reason = reason
        self.message_key = message_key


class EmailAlreadyExists(DomainError):
    """Another account already uses this e-mail address (compared case-insensitively)."""

    reason = Reason.EMAIL_ALREADY_EXISTS
    message_key = "email_taken"


class InvalidCredentials(DomainError):
    """Unknown e-mail or wrong password: deliberately indistinguishable."""

    reason = Reason.INVALID_CREDENTIALS
    message_key = "login_invalid"


class SessionInvalid(DomainError):
    """The session token is unknown, expired or revoked, or its user may no longer log in."""

    reason = Reason.SESSION_INVALID
    message_key = "session_invalid"


class SecondFactorInvalid(DomainError):
    """A second factor or passkey ceremony failed: the code, the assertion or its challenge
    is wrong, used already or expired (which of them is not told)."""

    reason = Reason.SECOND_FACTOR_INVALID
    message_key = "second_factor_invalid"


class PasskeyAlreadyRegistered(DomainError):
    """The credential is registered already (to this user or another)."""

    reason = Reason.PASSKEY_ALREADY_REGISTERED
    message_key = "passkey_taken"


class PasskeyNotFound(DomainError):
    """The logged-in user has no passkey with this id."""

    reason = Reason.PASSKEY_NOT_FOUND
    message_key = "passkey_not_found"


class AccountPendingVerification(DomainError):
    """The password was right but the e-mail address is not verified yet."""

    reason = Reason.ACCOUNT_PENDING_VERIFICATION
    message_key = "verification_pending"


class AccountPendingApproval(DomainError):
    """The password was right but an administrator has not approved the account yet."""

    reason = Reason.ACCOUNT_PENDING_APPROVAL
    message_key = "approval_pending"


class AccountDisabled(DomainError):
    """The password was right but the account is disabled (a password reset re-enables it)."""

    reason = Reason.ACCOUNT_DISABLED
    message_key = "login_disabled"


class AccountBlocked(DomainError):
    """The password was right but the account is blocked by an administrator."""

    reason = Reason.ACCOUNT_BLOCKED
    message_key = "login_blocked"


class RpcDisabled(DomainError):
    """The deployment switched this RPC off (``disabled_rpcs``)."""

    reason = Reason.RPC_DISABLED
    message_key = "rpc_disabled"


class RpcUnimplemented(DomainError):
    """The contract names this RPC but this version of the server does not serve it yet."""

    reason = Reason.RPC_UNIMPLEMENTED
    message_key = "rpc_unimplemented"


class VerificationKeyInvalid(InvalidArgument):
    """The verification key is unknown, used or expired."""

    def __init__(self) -> None:
        super().__init__(
            [FieldViolation("verification_key", "the key is unknown, used or expired")],
            reason=Reason.VERIFICATION_KEY_INVALID,
            message_key="verification_key_invalid",
        )


class ResetKeyInvalid(InvalidArgument):
    """The password reset key is unknown, used, superseded or expired."""

    def __init__(self) -> None:
        super().__init__(
            [FieldViolation("reset_key", "the key is unknown, used, superseded or expired")],
            reason=Reason.RESET_KEY_INVALID,
            message_key="reset_key_invalid",
        )


class PasswordIncorrect(InvalidArgument):
    """The current password given to change it (or to confirm a change) is wrong."""

    def __init__(self, field: str = "old_password") -> None:
        super().__init__(
            [FieldViolation(field, "the current password is incorrect")],
            reason=Reason.PASSWORD_INCORRECT,
            message_key="password_incorrect",
        )


class TotpAlreadyEnabled(DomainError):
    """The user has a confirmed TOTP already: it is disabled before enrolling again."""

    reason = Reason.TOTP_ALREADY_ENABLED
    message_key = "totp_already_enabled"


class TotpNotEnabled(DomainError):
    """The user has no TOTP to confirm (none enrolled), disable or prove."""

    reason = Reason.TOTP_NOT_ENABLED
    message_key = "totp_not_enabled"


class UserNotFound(DomainError):
    """No user has this id or address."""

    reason = Reason.USER_NOT_FOUND
    message_key = "user_not_found"


class GroupNotFound(DomainError):
    """No group has this name."""

    reason = Reason.GROUP_NOT_FOUND
    message_key = "group_not_found"


class GroupAlreadyExists(DomainError):
    """A group with this name exists already."""

    reason = Reason.GROUP_ALREADY_EXISTS
    message_key = "group_taken"


class MembershipNotFound(DomainError):
    """The user is not a member of the group."""

    reason = Reason.MEMBERSHIP_NOT_FOUND
    message_key = "membership_not_found"


class PermissionNotFound(DomainError):
    """No grant has this id."""

    reason = Reason.PERMISSION_NOT_FOUND
    message_key = "permission_not_found"


class StreamOverflowed(DomainError):
    """A watcher fell too far behind; it catches up with ListEvents and watches again."""

    reason = Reason.STREAM_OVERFLOW
    message_key = "stream_overflow"


class ShuttingDown(DomainError):
    """The server is stopping."""

    reason = Reason.SHUTTING_DOWN
    message_key = "shutting_down"


class TooManyAttempts(DomainError):
    """Too many failed password checks for this address or client: try again later."""

    reason = Reason.TOO_MANY_ATTEMPTS
    message_key = "too_many_attempts"


class Overloaded(DomainError):
    """Too much work of one kind (password checks) is waiting; retry after a while."""

    reason = Reason.OVERLOADED
    message_key = "overloaded"


DEPENDENCY_RETRY_AFTER = 1
"""Seconds a caller is told to wait before retrying when the database cannot be reached:
short, since a replica that reconnects serves again at once."""


class DependencyUnavailable(DomainError):
    """Something the service needs (its database) cannot be reached: answer UNAVAILABLE
    with a retry delay. ``detail`` is for the server's log only (it may name hosts)."""

    reason = Reason.DATABASE_UNAVAILABLE
    message_key = "database_unavailable"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail, metadata={"retry_after": str(DEPENDENCY_RETRY_AFTER)})


class HookRefused(Exception):
    """An application's hook refused the flow (see ``domain/accounts/hooks.py``).

    Not a DomainError: its reason and domain are the application's, not the contract's
    ``ErrorReason`` (the transport sends them in the ErrorInfo as given).

    Attributes:
        message: the end user's text, sent as the status message and LocalizedMessage.
        reason: ``ErrorInfo.reason``, e.g. ``"DOMAIN_NOT_ALLOWED"``.
        domain: ``ErrorInfo.domain``: the application's, so that no reason of ours is
            mistaken for it.
        hook: which hook refused (``before_register``...), sent as ErrorInfo metadata.
    """

    def __init__(self, message: str, *, reason: str, domain: str, hook: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.domain = domain
        self.hook = hook


class HookFailed(Exception):
    """An application's hook raised something other than a refusal: the flow did
    nothing, and the caller may retry (the transport answers UNAVAILABLE)."""

    def __init__(self, hook: str) -> None:
        super().__init__(f"the {hook} hook failed")
        self.hook = hook
