"""What the blocking and the asyncio client share: call options, the revision of the
client's latest write, and request helpers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

from google.protobuf import field_mask_pb2, struct_pb2

from watchword.auth.v1 import access_service_pb2 as access

__all__ = [
    "READ_YOUR_WRITES_WINDOW",
    "USE_CLIENT_DEFAULT",
    "CallMetadata",
    "CallOptions",
    "Revisions",
    "Timeout",
    "UseClientDefault",
    "mask_of",
    "membership_request",
    "one_subject",
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


READ_YOUR_WRITES_WINDOW: Final = 60.0
"""Seconds after a write during which a client's checks carry its revision by default:
twice the server's default ``check_cache_max_staleness``, after which even a cached answer
reflects the write."""


class Revisions:
    """The revision of a client's latest write, and the ``min_revision`` its checks send.

    Args:
        read_your_writes: ``True`` to send the latest write's revision with the checks made
            within :data:`READ_YOUR_WRITES_WINDOW` seconds after it, a number of seconds for
            another window, ``False`` (or 0) never to send it.
        clock: Seconds from any fixed origin (``time.monotonic``).

    "Latest" is the write whose answer arrived last: with writes made one after another,
    the newest one, which the server applies after every earlier one.
    """

    def __init__(
        self, read_your_writes: bool | float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if read_your_writes is True:
            window = READ_YOUR_WRITES_WINDOW
        elif read_your_writes is False:
            window = 0.0
        else:
            window = float(read_your_writes)
        if math.isnan(window) or window < 0:
            raise ValueError(f"read_your_writes must be a bool or seconds >= 0, not {window}")
        self.window = window
        self._clock = clock
        # One tuple, replaced whole: threads sharing a blocking client never see it torn.
        self._latest: tuple[str, float] = ("", 0.0)

    @property
    def last(self) -> str:
        """The revision returned by the latest write; ``""`` before the first."""
        return self._latest[0]

    def note(self, revision: str) -> None:
        """Remember the revision a write returned (an empty one, from an older server, is
        no revision)."""
        if revision:
            self._latest = (revision, self._clock())

    def min_revision(self, explicit: str | None) -> str:
        """What a check sends: ``explicit`` when given (``""`` asks for no revision), else
        the latest write's revision while it is within the window, else ``""``."""
        if explicit is not None:
            return explicit
        revision, written = self._latest
        if revision and self._clock() - written < self.window:
            return revision
        return ""


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


def one_subject(**subjects: str | None) -> tuple[str, str]:
    """The one subject given (not ``None``) as ``(name, value)``; ValueError otherwise."""
    given = [(name, value) for name, value in subjects.items() if value is not None]
    if len(given) != 1:
        names = ", ".join(subjects)
        raise ValueError(f"pass exactly one subject of: {names} (got {len(given)})")
    return given[0]


def membership_request(
    *, group: str, user_id: str | None, session_token: str | None, min_revision: str = ""
) -> access.HasMembershipRequest:
    """A HasMembership request; exactly one of ``user_id`` and ``session_token``."""
    name, value = one_subject(user_id=user_id, session_token=session_token)
    request = access.HasMembershipRequest(group=group, min_revision=min_revision)
    if name == "user_id":
        request.user_id = value
    else:
        request.session_token = value
    return request


def permission_request(
    *,
    name: str,
    table_name: str,
    record_id: str,
    user_id: str | None,
    session_token: str | None,
    group: str | None,
    min_revision: str = "",
) -> access.HasPermissionRequest:
    """A HasPermission request; exactly one of ``user_id``, ``session_token``, ``group``."""
    subject, value = one_subject(user_id=user_id, session_token=session_token, group=group)
    request = access.HasPermissionRequest(
        name=name, table_name=table_name, record_id=record_id, min_revision=min_revision
    )
    if subject == "user_id":
        request.user_id = value
    elif subject == "session_token":
        request.session_token = value
    else:
        request.group = value
    return request
