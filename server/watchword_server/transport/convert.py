"""Conversions between domain values and proto messages (the only place that knows both)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from watchword.auth.v1 import resources_pb2
from watchword_server.model.errors import FieldViolation, InvalidArgument
from watchword_server.model.records import (
    CallContext,
    EventKind,
    EventRecord,
    GroupRecord,
    MembershipRecord,
    PermissionRecord,
    SecondFactorMethod,
    UserRecord,
    UserStatus,
)
from watchword_server.transport.client_address import client_ip

__all__ = [
    "call_context",
    "dict_to_struct",
    "event_to_proto",
    "group_to_proto",
    "kind_filter",
    "kind_from_proto",
    "membership_to_proto",
    "methods_to_proto",
    "permission_to_proto",
    "status_filter",
    "status_from_proto",
    "struct_to_dict",
    "timestamp",
    "user_to_proto",
]

_STATUS_TO_PROTO = {
    UserStatus.ACTIVE: resources_pb2.USER_STATUS_ACTIVE,
    UserStatus.PENDING_VERIFICATION: resources_pb2.USER_STATUS_PENDING_VERIFICATION,
    UserStatus.PENDING_APPROVAL: resources_pb2.USER_STATUS_PENDING_APPROVAL,
    UserStatus.DISABLED: resources_pb2.USER_STATUS_DISABLED,
    UserStatus.BLOCKED: resources_pb2.USER_STATUS_BLOCKED,
}

_STATUS_FROM_PROTO: dict[int, UserStatus] = {int(n): s for s, n in _STATUS_TO_PROTO.items()}
_KIND_TO_PROTO = {
    kind: resources_pb2.EventKind.Value(f"EVENT_KIND_{kind.name}") for kind in EventKind
}
_KIND_FROM_PROTO: dict[int, EventKind] = {int(n): k for k, n in _KIND_TO_PROTO.items()}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def methods_to_proto(methods: Iterable[SecondFactorMethod]) -> list[int]:
    """Second-factor methods as proto ``SecondFactorMethod`` values, in the given order."""
    return [
        resources_pb2.SecondFactorMethod.Value(f"SECOND_FACTOR_METHOD_{m.name}") for m in methods
    ]


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A proto Timestamp for an aware datetime."""
    # Integer arithmetic: a third of Timestamp.FromDatetime's cost, on the Introspect path.
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


# Bounds on free-form JSON (custom fields, group extras): deep or huge values are refused
# rather than stored and echoed back in every list.
_MAX_STRUCT_BYTES = 16 * 1024
_MAX_STRUCT_DEPTH = 8


def struct_to_dict(value: struct_pb2.Struct, field: str = "extra") -> dict[str, Any]:
    """A plain dict from a Struct (an unset Struct gives ``{}``).

    Raises:
        InvalidArgument: the value is larger than 16 KiB, nested deeper than 8 levels, or
            holds a non-finite number or a NUL character (which PostgreSQL cannot store).
    """
    if value.ByteSize() > _MAX_STRUCT_BYTES:
        raise InvalidArgument([FieldViolation(field, f"{field} is larger than 16 KiB")])
    problems: list[FieldViolation] = []
    result = _struct(value, field, 0, problems)
    if problems:
        raise InvalidArgument(problems[:10])
    return result


def _struct(
    value: struct_pb2.Struct, path: str, depth: int, problems: list[FieldViolation]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.fields.items():
        if "\x00" in key:
            problems.append(FieldViolation(path, "keys must not contain NUL"))
            continue
        result[key] = _value(item, f"{path}.{key[:64]}", depth + 1, problems)
    return result


def _value(value: struct_pb2.Value, path: str, depth: int, problems: list[FieldViolation]) -> Any:
    if depth > _MAX_STRUCT_DEPTH:
        problems.append(FieldViolation(path, "nested too deeply"))
        return None
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        if not math.isfinite(value.number_value):
            problems.append(FieldViolation(path, "numbers must be finite"))
        return value.number_value
    if kind == "string_value":
        if "\x00" in value.string_value:
            problems.append(FieldViolation(path, "text must not contain NUL"))
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value, path, depth, problems)
    if kind == "list_value":
        return [_value(item, path, depth + 1, problems) for item in value.list_value.values]
    return None


def dict_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """A Struct holding ``value``."""
    result = struct_pb2.Struct()
    result.update(value)
    return result


def user_to_proto(user: UserRecord) -> resources_pb2.User:
    """The public view of an account."""
    return resources_pb2.User(
        id=str(user.id),
        email=user.email,
        first_name=user.first_name,
        last_name=user.last_name,
        status=_STATUS_TO_PROTO[user.status],
        email_verified=user.email_verified,
        create_time=timestamp(user.create_time),
        update_time=timestamp(user.update_time),
        extra=dict_to_struct(user.extra) if user.extra else None,
    )


def call_context(*, origin: str) -> CallContext:
    """The running call as the domain records it: its client's address (``client_ip()``,
    set by the RPC observer) and ``origin``."""
    return CallContext(client_ip=client_ip(), origin=origin)


def status_from_proto(value: int) -> UserStatus | None:
    """The domain status for a proto enum value; None for UNSPECIFIED (or unknown)."""
    return _STATUS_FROM_PROTO.get(int(value))


def kind_from_proto(value: int) -> EventKind | None:
    """The domain event kind for a proto enum value; None for UNSPECIFIED (or unknown)."""
    return _KIND_FROM_PROTO.get(int(value))


def group_to_proto(group: GroupRecord) -> resources_pb2.Group:
    """A group resource."""
    return resources_pb2.Group(
        name=group.name,
        description=group.description,
        create_time=timestamp(group.create_time),
        extra=dict_to_struct(group.extra),
    )


def membership_to_proto(membership: MembershipRecord) -> resources_pb2.Membership:
    """A membership resource."""
    return resources_pb2.Membership(
        group=membership.group,
        user_id=str(membership.user_id),
        create_time=timestamp(membership.create_time),
        extra=dict_to_struct(membership.extra),
    )


def permission_to_proto(permission: PermissionRecord) -> resources_pb2.Permission:
    """A permission resource."""
    return resources_pb2.Permission(
        id=str(permission.id),
        group=permission.group,
        name=permission.name,
        table_name=permission.table_name,
        record_id=permission.record_id,
        create_time=timestamp(permission.create_time),
        extra=dict_to_struct(permission.extra),
    )


def event_to_proto(event: EventRecord) -> resources_pb2.Event:
    """An event resource."""
    return resources_pb2.Event(
        id=str(event.id),
        user_id=str(event.user_id) if event.user_id else "",
        kind=_KIND_TO_PROTO[event.kind],
        description=event.description,
        client_ip=event.client_ip,
        origin=event.origin,
        create_time=timestamp(event.create_time),
        # Set on every event (empty for ours), so a reader never checks for presence.
        data=dict_to_struct(event.data),
    )


def status_filter(value: int, field: str = "status") -> UserStatus | None:
    """A status filter: None for UNSPECIFIED (no filter); an unknown number is refused."""
    status = status_from_proto(value)
    if status is None and value:
        raise InvalidArgument([FieldViolation(field, f"{value} is not a UserStatus")])
    return status


def kind_filter(value: int, field: str = "kind") -> EventKind | None:
    """An event kind filter: None for UNSPECIFIED (no filter); an unknown number is refused."""
    kind = kind_from_proto(value)
    if kind is None and value:
        raise InvalidArgument([FieldViolation(field, f"{value} is not an EventKind")])
    return kind
