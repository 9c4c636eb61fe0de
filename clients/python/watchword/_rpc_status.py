"""Decodes the rich error status (``grpc-status-details-bin``, or a BatchCheck item's error).

The server sends a serialized ``google.rpc.Status`` whose ``details`` are ``Any`` messages
holding ``google.rpc.ErrorInfo``, ``BadRequest``, ``LocalizedMessage`` and (for throttled
calls) ``RetryInfo``. They are decoded with googleapis-common-protos' generated messages
(a dependency already: BatchCheck's answers hold a ``google.rpc.Status``). ``Any`` details
are matched by the suffix of their type URL, so a detail packed under another host name
still counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf import any_pb2, message
from google.rpc import error_details_pb2, status_pb2

__all__ = ["DETAILS_KEY", "RichStatus", "decode_details", "find_details"]

DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class RichStatus:
    """What a ``google.rpc.Status`` says, flattened (the first ErrorInfo wins)."""

    code: int
    message: str
    reason: str = ""
    domain: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    violations: tuple[tuple[str, str], ...] = ()
    localized_message: str = ""
    retry_delay: float | None = None


def _detail_name(detail: any_pb2.Any) -> str:
    """``google.rpc.ErrorInfo`` from ``type.googleapis.com/google.rpc.ErrorInfo``."""
    return detail.type_url.rpartition("/")[2]


def decode_details(data: bytes) -> RichStatus | None:
    """Decode a serialized ``google.rpc.Status``; ``None`` when it is not one."""
    try:
        status = status_pb2.Status.FromString(data)
    except message.DecodeError:
        return None
    reason = domain = localized = ""
    metadata: tuple[tuple[str, str], ...] = ()
    violations: list[tuple[str, str]] = []
    retry_delay: float | None = None
    seen_info = False
    for detail in status.details:
        name, value = _detail_name(detail), detail.value
        try:
            if name == "google.rpc.ErrorInfo" and not seen_info:
                info = error_details_pb2.ErrorInfo.FromString(value)
                seen_info = True
                reason, domain = info.reason, info.domain
                metadata = tuple(sorted(info.metadata.items()))
            elif name == "google.rpc.BadRequest":
                bad = error_details_pb2.BadRequest.FromString(value)
                violations.extend((v.field, v.description) for v in bad.field_violations)
            elif name == "google.rpc.LocalizedMessage":
                localized = error_details_pb2.LocalizedMessage.FromString(value).message
            elif name == "google.rpc.RetryInfo":
                delay = error_details_pb2.RetryInfo.FromString(value).retry_delay
                retry_delay = delay.seconds + delay.nanos / 1e9
        except message.DecodeError:
            continue  # one garbled detail does not hide the others
    return RichStatus(
        code=status.code,
        message=status.message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        violations=tuple(violations),
        localized_message=localized,
        retry_delay=retry_delay,
    )


def find_details(trailing_metadata: Iterable[tuple[str, str | bytes]]) -> RichStatus | None:
    """Find and decode the rich status among a call's trailing metadata."""
    for key, value in trailing_metadata:
        if key == DETAILS_KEY and isinstance(value, bytes):
            return decode_details(value)
    return None
