"""Conversions between domain values and proto messages (the only place that knows both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from watchword.auth.v1 import resources_pb2
from watchword_server.domain.types import CallContext, UserRecord, UserStatus

__all__ = ["call_context", "dict_to_struct", "struct_to_dict", "timestamp", "user_to_proto"]

_STATUS_TO_PROTO = {
    UserStatus.ACTIVE: resources_pb2.USER_STATUS_ACTIVE,
    UserStatus.PENDING_VERIFICATION: resources_pb2.USER_STATUS_PENDING_VERIFICATION,
    UserStatus.PENDING_APPROVAL: resources_pb2.USER_STATUS_PENDING_APPROVAL,
    UserStatus.DISABLED: resources_pb2.USER_STATUS_DISABLED,
    UserStatus.BLOCKED: resources_pb2.USER_STATUS_BLOCKED,
}

# The calling backend reports its end user's address here; without it we record the peer.
CLIENT_IP_METADATA = ("x-forwarded-for", "x-real-ip")


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A proto Timestamp for an aware datetime."""
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def struct_to_dict(value: struct_pb2.Struct) -> dict[str, Any]:
    """A plain dict from a Struct (an unset Struct gives ``{}``)."""
    return dict(json_format.MessageToDict(value))


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
        extra=dict_to_struct(user.extra),
    )


def call_context(context: grpc.aio.ServicerContext[Any, Any], *, origin: str) -> CallContext:
    """Who is calling: the end user's address if the backend passed it, else the peer's."""
    metadata = {key: value for key, value in (context.invocation_metadata() or ())}
    for key in CLIENT_IP_METADATA:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return CallContext(client_ip=value.split(",")[0].strip()[:64], origin=origin)
    return CallContext(client_ip=_peer_address(context.peer()), origin=origin)


def _peer_address(peer: str) -> str:
    # "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path"
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer[:64]
