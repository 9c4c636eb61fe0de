"""What the blocking and the asyncio client share: call options and request helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

from google.protobuf import field_mask_pb2, struct_pb2

from watchword.auth.v1 import access_service_pb2 as access

__all__ = [
    "USE_CLIENT_DEFAULT",
    "CallMetadata",
    "CallOptions",
    "Timeout",
    "UseClientDefault",
    "mask_of",
    "membership_request",
    "permission_request",
    "struct_of",
]


class UseClientDefault:
    """The type of :data:`USE_CLIENT_DEFAULT`: "take the client's default timeout".

    It is distinct from ``None``, which means "no deadline at all".
    """

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault()

Timeout: TypeAlias = float | None | UseClientDefault
CallMetadata: TypeAlias = Sequence[tuple[str, str]]


class CallOptions:
    """A client's defaults: the deadline and the metadata sent with every call."""

    def __init__(
        self, *, service_key: str | None, timeout: float | None, metadata: CallMetadata
    ) -> None:
        pairs = [(str(key), str(value)) for key, value in metadata]
        if service_key is not None:
            pairs.insert(0, ("authorization", f"Bearer {service_key}"))
        self.timeout = timeout
        self.metadata: tuple[tuple[str, str], ...] = tuple(pairs)

    def timeout_for(self, timeout: Timeout) -> float | None:
        """The deadline of one call, in seconds from now; ``None`` for none."""
        return self.timeout if isinstance(timeout, UseClientDefault) else timeout

    def metadata_for(self, metadata: CallMetadata) -> tuple[tuple[str, str], ...]:
        """The client's metadata followed by the call's own."""
        return self.metadata + tuple((str(key), str(value)) for key, value in metadata)


def struct_of(extra: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    """A ``google.protobuf.Struct`` from a JSON-like mapping; ``None`` when not given."""
    if extra is None:
        return None
    struct = struct_pb2.Struct()
    struct.update(extra)
    return struct


def mask_of(paths: Sequence[str]) -> field_mask_pb2.FieldMask | None:
    """A ``FieldMask``; ``None`` (unset) for no paths, so the server's default applies."""
    if isinstance(paths, str):
        raise TypeError("update_mask takes a sequence of field names, not one string")
    return field_mask_pb2.FieldMask(paths=list(paths)) if paths else None


def _one_subject(**subjects: str | None) -> tuple[str, str]:
    given = [(name, value) for name, value in subjects.items() if value is not None]
    if len(given) != 1:
        names = ", ".join(subjects)
        raise ValueError(f"pass exactly one subject of: {names} (got {len(given)})")
    return given[0]


def membership_request(
    *, group: str, user_id: str | None, session_token: str | None
) -> access.HasMembershipRequest:
    """A HasMembership request; exactly one of ``user_id`` and ``session_token``."""
    name, value = _one_subject(user_id=user_id, session_token=session_token)
    if name == "user_id":
        return access.HasMembershipRequest(group=group, user_id=value)
    return access.HasMembershipRequest(group=group, session_token=value)


def permission_request(
    *,
    name: str,
    table_name: str,
    record_id: str,
    user_id: str | None,
    session_token: str | None,
    group: str | None,
) -> access.HasPermissionRequest:
    """A HasPermission request; exactly one of ``user_id``, ``session_token``, ``group``."""
    subject, value = _one_subject(user_id=user_id, session_token=session_token, group=group)
    request = access.HasPermissionRequest(name=name, table_name=table_name, record_id=record_id)
    if subject == "user_id":
        request.user_id = value
    elif subject == "session_token":
        request.session_token = value
    else:
        request.group = value
    return request
