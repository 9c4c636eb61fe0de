"""Decodes the rich error status (``grpc-status-details-bin``, or a BatchCheck item's error).

The server sends a serialized ``google.rpc.Status`` whose ``details`` are ``Any`` messages
holding ``google.rpc.ErrorInfo``, ``BadRequest``, ``LocalizedMessage`` and (for throttled
calls) ``RetryInfo``. This module declares wire-compatible copies of those messages (same
field numbers and types) under a private proto package in a private descriptor pool, so
decoding needs nothing of googleapis-common-protos (the generated BatchCheck messages do
import its ``google.rpc.Status``) and never clashes with it. ``Any`` details are matched by
the suffix of their type URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message,
    message_factory,
)

__all__ = ["DETAILS_KEY", "RichStatus", "decode_details", "find_details"]

DETAILS_KEY = "grpc-status-details-bin"
_PACKAGE = "watchword.client.internal.rpc"
_FILE = "watchword/client/internal/rpc/status.proto"

_Field = descriptor_pb2.FieldDescriptorProto


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


def _add_field(
    owner: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: _Field.Type.ValueType = _Field.TYPE_STRING,
    *,
    type_name: str = "",
    repeated: bool = False,
) -> None:
    field = owner.field.add(
        name=name,
        number=number,
        type=kind,
        label=_Field.LABEL_REPEATED if repeated else _Field.LABEL_OPTIONAL,
        json_name=name,
    )
    if type_name:  # descriptor.proto is proto2: an empty type_name still counts as set
        field.type_name = type_name


def _file_proto() -> descriptor_pb2.FileDescriptorProto:
    """The private twin of google/rpc/status.proto and google/rpc/error_details.proto."""
    file = descriptor_pb2.FileDescriptorProto(
        name=_FILE,
        package=_PACKAGE,
        syntax="proto3",
        dependency=[any_pb2.DESCRIPTOR.name, duration_pb2.DESCRIPTOR.name],
    )
    status = file.message_type.add(name="Status")
    _add_field(status, "code", 1, _Field.TYPE_INT32)
    _add_field(status, "message", 2)
    _add_field(
        status, "details", 3, _Field.TYPE_MESSAGE, type_name=".google.protobuf.Any", repeated=True
    )

    info = file.message_type.add(name="ErrorInfo")
    _add_field(info, "reason", 1)
    _add_field(info, "domain", 2)
    entry = info.nested_type.add(name="MetadataEntry")
    entry.options.map_entry = True
    _add_field(entry, "key", 1)
    _add_field(entry, "value", 2)
    _add_field(
        info,
        "metadata",
        3,
        _Field.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.ErrorInfo.MetadataEntry",
        repeated=True,
    )

    localized = file.message_type.add(name="LocalizedMessage")
    _add_field(localized, "locale", 1)
    _add_field(localized, "message", 2)

    bad_request = file.message_type.add(name="BadRequest")
    violation = bad_request.nested_type.add(name="FieldViolation")
    _add_field(violation, "field", 1)
    _add_field(violation, "description", 2)
    _add_field(violation, "reason", 3)
    _add_field(
        violation,
        "localized_message",
        4,
        _Field.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.LocalizedMessage",
    )
    _add_field(
        bad_request,
        "field_violations",
        1,
        _Field.TYPE_MESSAGE,
        type_name=f".{_PACKAGE}.BadRequest.FieldViolation",
        repeated=True,
    )

    retry = file.message_type.add(name="RetryInfo")
    _add_field(retry, "retry_delay", 1, _Field.TYPE_MESSAGE, type_name=".google.protobuf.Duration")
    return file


def _message_classes() -> dict[str, type[message.Message]]:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(any_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(duration_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(_file_proto().SerializeToString())
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("Status", "ErrorInfo", "BadRequest", "LocalizedMessage", "RetryInfo")
    }


_CLASSES = _message_classes()
_Status = _CLASSES["Status"]
_ErrorInfo = _CLASSES["ErrorInfo"]
_BadRequest = _CLASSES["BadRequest"]
_LocalizedMessage = _CLASSES["LocalizedMessage"]
_RetryInfo = _CLASSES["RetryInfo"]


def _get(msg: message.Message, name: str) -> Any:
    # The classes are built at run time, so their fields are invisible to the type checker.
    return getattr(msg, name)


def _detail_name(detail: message.Message) -> str:
    """``google.rpc.ErrorInfo`` from ``type.googleapis.com/google.rpc.ErrorInfo``."""
    return str(_get(detail, "type_url")).rpartition("/")[2]


def decode_details(data: bytes) -> RichStatus | None:
    """Decode a serialized ``google.rpc.Status``; ``None`` when it is not one."""
    try:
        status = _Status.FromString(data)
    except message.DecodeError:
        return None
    reason = domain = localized = ""
    metadata: tuple[tuple[str, str], ...] = ()
    violations: list[tuple[str, str]] = []
    retry_delay: float | None = None
    seen_info = False
    for detail in _get(status, "details"):
        name = _detail_name(detail)
        value: bytes = _get(detail, "value")
        try:
            if name == "google.rpc.ErrorInfo" and not seen_info:
                info = _ErrorInfo.FromString(value)
                seen_info = True
                reason, domain = str(_get(info, "reason")), str(_get(info, "domain"))
                metadata = tuple(sorted(dict(_get(info, "metadata")).items()))
            elif name == "google.rpc.BadRequest":
                bad = _BadRequest.FromString(value)
                violations.extend(
                    (str(_get(v, "field")), str(_get(v, "description")))
                    for v in _get(bad, "field_violations")
                )
            elif name == "google.rpc.LocalizedMessage":
                localized = str(_get(_LocalizedMessage.FromString(value), "message"))
            elif name == "google.rpc.RetryInfo":
                delay = _get(_RetryInfo.FromString(value), "retry_delay")
                retry_delay = int(_get(delay, "seconds")) + int(_get(delay, "nanos")) / 1e9
        except message.DecodeError:
            continue  # one garbled detail does not hide the others
    return RichStatus(
        code=int(_get(status, "code")),
        message=str(_get(status, "message")),
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
