"""One exception class per gRPC status code, carrying the server's rich error details.

Every client method turns a failed call's ``grpc.RpcError`` into one of these (``raise ...
from error``), so callers catch what they mean::

    try:
        await client.authenticate(email=email, password=password)
    except watchword.Unauthenticated as error:
        print(error.reason, error.message)  # "INVALID_CREDENTIALS", the configured text
    except watchword.InvalidArgument as error:
        print(error.violation_fields)  # e.g. frozenset({"password"})
    except watchword.ResourceExhausted as error:
        print(error.reason, error.retry_after)  # "TOO_MANY_ATTEMPTS" or "OVERLOADED", seconds

A check of a ``batch_check`` that could not be answered carries one of these too, decoded
from its own ``google.rpc.Status`` (see :func:`from_status`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message as _message

from watchword._rpc_status import RichStatus, decode_details, find_details

__all__ = [
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WatchwordError",
    "from_rpc_error",
    "from_status",
]


@dataclass(frozen=True)
class FieldViolation:
    """One input error from a ``google.rpc.BadRequest``.

    Attributes:
        field: The request field at fault, e.g. ``"password"``.
        description: Why the value was refused.
    """

    field: str
    description: str


class WatchwordError(Exception):
    """A failed call. Subclasses name the gRPC status code; catch this for all of them.

    Attributes:
        code: The gRPC status code.
        reason: ``ErrorInfo.reason``, e.g. ``"INVALID_CREDENTIALS"``; ``""`` if none.
        domain: ``ErrorInfo.domain`` (``"watchword.auth.v1"`` for the server's own errors).
        metadata: ``ErrorInfo.metadata``.
        violations: The ``BadRequest`` field violations, in the server's order.
        message: The ``LocalizedMessage`` text (the configured, user-facing text) when the
            server sent one, else the status message.
        details: The status message exactly as sent (what ``grpc.RpcError.details()`` says).
        retry_after: Seconds to wait before trying again, when the server says
            (``RetryInfo``, else ``metadata["retry_after"]``): set with RESOURCE_EXHAUSTED
            ``TOO_MANY_ATTEMPTS`` and ``OVERLOADED``; ``None`` otherwise.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: Iterable[FieldViolation] = (),
        details: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: tuple[FieldViolation, ...] = tuple(violations)
        self.details = message if details is None else details
        self.retry_after = retry_after

    @property
    def violation_fields(self) -> frozenset[str]:
        """The names of the fields with violations."""
        return frozenset(violation.field for violation in self.violations)

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason and self.reason != self.code.name else ""
        text = f"{self.code.name}{reason}: {self.details or self.message}"
        if self.violations:
            text += " [" + "; ".join(f"{v.field}: {v.description}" for v in self.violations) + "]"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, violations={list(self.violations)!r})"
        )


class Cancelled(WatchwordError):
    """The call was cancelled (CANCELLED), usually by the caller."""

    code = grpc.StatusCode.CANCELLED


class Unknown(WatchwordError):
    """UNKNOWN: an error without a better code."""

    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(WatchwordError):
    """INVALID_ARGUMENT: bad input; see ``violations``."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(WatchwordError):
    """DEADLINE_EXCEEDED: the call's timeout ran out."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(WatchwordError):
    """NOT_FOUND: an unknown user, group, membership, permission or key."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(WatchwordError):
    """ALREADY_EXISTS: a duplicate e-mail address or group."""

    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(WatchwordError):
    """PERMISSION_DENIED: the service key's scope is too small."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(WatchwordError):
    """RESOURCE_EXHAUSTED: too many failed logins (``TOO_MANY_ATTEMPTS``) or too many
    password checks waiting on the server (``OVERLOADED``); ``retry_after`` says when to
    try again."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(WatchwordError):
    """FAILED_PRECONDITION: the account's state forbids it (pending, disabled, blocked)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(WatchwordError):
    """ABORTED: a concurrency conflict."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(WatchwordError):
    """OUT_OF_RANGE."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(WatchwordError):
    """UNIMPLEMENTED: the RPC is unknown or disabled on this server."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(WatchwordError):
    """INTERNAL: a server bug."""

    code = grpc.StatusCode.INTERNAL


class Unavailable(WatchwordError):
    """UNAVAILABLE: the server cannot be reached or is shutting down; retrying may help."""

    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(WatchwordError):
    """DATA_LOSS."""

    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(WatchwordError):
    """UNAUTHENTICATED: wrong credentials, an invalid session or a missing service key."""

    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE: dict[grpc.StatusCode, type[WatchwordError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


_BY_NUMBER: dict[int, grpc.StatusCode] = {int(code.value[0]): code for code in grpc.StatusCode}


def _call_part(error: grpc.RpcError, name: str) -> Any:
    # A bare grpc.RpcError is not a Call and has none of these methods; failed calls are.
    method = getattr(error, name, None)
    return method() if callable(method) else None


def _retry_after(rich: RichStatus) -> float | None:
    if rich.retry_delay is not None:
        return rich.retry_delay
    text = dict(rich.metadata).get("retry_after", "")
    return float(text) if text.isdigit() else None


def _from_rich(code: grpc.StatusCode, details: str, rich: RichStatus | None) -> WatchwordError:
    cls = _BY_CODE.get(code, WatchwordError)
    if rich is None:
        return cls(details, code=code, details=details)
    return cls(
        rich.localized_message or rich.message or details,
        code=code,
        reason=rich.reason,
        domain=rich.domain,
        metadata=dict(rich.metadata),
        violations=(FieldViolation(field, description) for field, description in rich.violations),
        details=details or rich.message,
        retry_after=_retry_after(rich),
    )


def from_rpc_error(error: grpc.RpcError) -> WatchwordError:
    """The exception for a failed call (sync or asyncio), with its rich details decoded.

    Args:
        error: What grpc raised.

    Returns:
        An instance of the subclass for the call's status code (``Unknown`` when the
        error carries no code).
    """
    code = _call_part(error, "code")
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details = str(_call_part(error, "details") or "")
    # Sync calls give (key, value) namedtuples, asyncio calls a grpc.aio.Metadata.
    trailing = _call_part(error, "trailing_metadata") or ()
    rich = find_details((str(item[0]), item[1]) for item in trailing)
    return _from_rich(code, details, rich)


def from_status(status: _message.Message) -> WatchwordError:
    """The exception for a ``google.rpc.Status`` message, such as the ``error`` of a
    ``CheckResult`` from the raw ``BatchCheck`` stub, with its rich details decoded.

    Args:
        status: A ``google.rpc.Status`` (any message with its layout).

    Returns:
        An instance of the subclass for the status's code. A status with code OK or a
        number that is no gRPC code gives ``Unknown``: it was sent as an error.
    """
    rich = decode_details(status.SerializeToString())
    if rich is None:  # not laid out as a google.rpc.Status after all
        return Unknown("an undecodable error status")
    code = _BY_NUMBER.get(rich.code, grpc.StatusCode.UNKNOWN)
    if code == grpc.StatusCode.OK:
        code = grpc.StatusCode.UNKNOWN
    return _from_rich(code, rich.message, rich)
