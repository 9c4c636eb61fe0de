"""The one table that turns domain errors into gRPC statuses with rich details.

Every error carries exactly one ``google.rpc.ErrorInfo`` (domain ``watchword.auth.v1``), a
``LocalizedMessage`` with the configured text, and ``BadRequest`` field violations for
input errors.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from watchword_server.config import Messages
from watchword_server.model.errors import (
    DomainError,
    HookFailed,
    HookRefused,
    InvalidArgument,
    Reason,
)
from watchword_server.templates import TemplateError, render

__all__ = [
    "ERROR_DOMAIN",
    "HOOK_ERROR_DOMAIN",
    "STATUS_CODES",
    "hook_status",
    "to_status",
    "to_status_proto",
]

ERROR_DOMAIN = "watchword.auth.v1"
# The ErrorInfo domain of a hook that failed: not the contract's, whose reasons are the
# proto ErrorReason's (a hook's refusal carries the application's own domain).
HOOK_ERROR_DOMAIN = "watchword.hooks"
_LOCALE = "en-US"

STATUS_CODES: Mapping[Reason, grpc.StatusCode] = {
    Reason.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.EMAIL_ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.GROUP_ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.USER_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.GROUP_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.PERMISSION_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.MEMBERSHIP_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.INVALID_CREDENTIALS: grpc.StatusCode.UNAUTHENTICATED,
    Reason.SESSION_INVALID: grpc.StatusCode.UNAUTHENTICATED,
    Reason.VERIFICATION_KEY_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.RESET_KEY_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.PASSWORD_INCORRECT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.ACCOUNT_PENDING_VERIFICATION: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.ACCOUNT_PENDING_APPROVAL: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.ACCOUNT_DISABLED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.ACCOUNT_BLOCKED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.TOO_MANY_ATTEMPTS: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.SERVICE_KEY_MISSING: grpc.StatusCode.UNAUTHENTICATED,
    Reason.SERVICE_KEY_INVALID: grpc.StatusCode.UNAUTHENTICATED,
    Reason.SCOPE_INSUFFICIENT: grpc.StatusCode.PERMISSION_DENIED,
    Reason.RPC_DISABLED: grpc.StatusCode.UNIMPLEMENTED,
    Reason.RPC_UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    Reason.PAGE_TOKEN_INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.STREAM_OVERFLOW: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.SHUTTING_DOWN: grpc.StatusCode.UNAVAILABLE,
    Reason.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Reason.DATABASE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.SECOND_FACTOR_INVALID: grpc.StatusCode.UNAUTHENTICATED,
    Reason.TOTP_ALREADY_ENABLED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.TOTP_NOT_ENABLED: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.PASSKEY_ALREADY_REGISTERED: grpc.StatusCode.ALREADY_EXISTS,
    Reason.PASSKEY_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
}


def message_text(error: DomainError, messages: Messages) -> str:
    """The configured user-facing text for ``error``, with its values filled in."""
    template = str(getattr(messages, error.message_key, "") or error.reason.value)
    try:
        return render(template, error.message_args)
    except TemplateError:
        return template


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


# Statuses travel in trailers, which peers cap at a few KiB: echoed input is cut short.
_MAX_ECHO = 200
_MAX_VIOLATIONS = 20
_MAX_MESSAGE = 1000


def _short(text: str, limit: int = _MAX_ECHO) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_status(error: DomainError, messages: Messages) -> grpc.Status:
    """The gRPC status (with rich details) to fail a call with ``error``."""
    return rpc_status.to_status(to_status_proto(error, messages))


def to_status_proto(error: DomainError, messages: Messages) -> status_pb2.Status:
    """Build the full ``google.rpc.Status`` for ``error``."""
    code = STATUS_CODES[error.reason]
    # The configured text alone is for end users (LocalizedMessage); the developer detail
    # goes only into Status.message.
    localized = message_text(error, messages)
    text = localized
    if isinstance(error, InvalidArgument) and error.detail:
        text = _short(f"{localized}: {error.detail}", _MAX_MESSAGE)
    details = [
        _pack(
            error_details_pb2.ErrorInfo(
                reason=error.reason.value, domain=ERROR_DOMAIN, metadata=dict(error.metadata)
            )
        )
    ]
    if isinstance(error, InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_short(v.field),
                            description=_short(v.description),
                            reason=error.reason.value,
                        )
                        for v in error.violations[:_MAX_VIOLATIONS]
                    ]
                )
            )
        )
    retry_after = error.metadata.get("retry_after", "")
    if retry_after.isdigit():
        delay = duration_pb2.Duration(seconds=int(retry_after))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    details.append(_pack(error_details_pb2.LocalizedMessage(locale=_LOCALE, message=localized)))
    return status_pb2.Status(code=_rpc_code(code), message=text, details=details)


def _rpc_code(code: grpc.StatusCode) -> int:
    # grpc.StatusCode values are (number, name) pairs; google.rpc.Code uses the same numbers.
    return int(code.value[0])


def hook_status(error: HookRefused | HookFailed, messages: Messages) -> grpc.Status:
    """The status of an application hook's refusal or failure.

    A refusal is FAILED_PRECONDITION (the application's rules do not allow this now, as
    an account's state may not: PERMISSION_DENIED is a service key's scope here) with the
    hook's message and an ErrorInfo of its reason in its domain. A failure is UNAVAILABLE
    (nothing was done; retrying may work) with reason HOOK_FAILED in ``watchword.hooks``
    and the ``hook_failed`` message. The ErrorInfo metadata names the hook.
    """
    if isinstance(error, HookRefused):
        code = grpc.StatusCode.FAILED_PRECONDITION
        reason, domain, text = error.reason, error.domain, _short(error.message, _MAX_MESSAGE)
    else:
        code = grpc.StatusCode.UNAVAILABLE
        reason, domain, text = "HOOK_FAILED", HOOK_ERROR_DOMAIN, messages.hook_failed
    info = error_details_pb2.ErrorInfo(
        reason=_short(reason), domain=_short(domain), metadata={"hook": error.hook}
    )
    localized = error_details_pb2.LocalizedMessage(locale=_LOCALE, message=text)
    proto = status_pb2.Status(
        code=_rpc_code(code), message=text, details=[_pack(info), _pack(localized)]
    )
    return rpc_status.to_status(proto)
