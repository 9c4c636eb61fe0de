"""The domain's enums and error table stay in step with the proto contract."""

from __future__ import annotations

import grpc

from watchword.auth.v1 import error_reason_pb2, resources_pb2
from watchword_server.model.errors import Reason
from watchword_server.model.records import EventKind, UserStatus
from watchword_server.transport.errors import STATUS_CODES


def _names(enum_type: object, prefix: str) -> set[str]:
    names = getattr(enum_type, "keys")()  # noqa: B009 - protobuf enum wrappers
    return {name.removeprefix(prefix) for name in names} - {"UNSPECIFIED"}


def test_reasons_match_error_reason() -> None:
    assert {r.value for r in Reason} == _names(error_reason_pb2.ErrorReason, "ERROR_REASON_")


def test_every_reason_has_a_status_code() -> None:
    assert set(STATUS_CODES) == set(Reason)
    assert grpc.StatusCode.INTERNAL not in STATUS_CODES.values()
    assert grpc.StatusCode.UNKNOWN not in STATUS_CODES.values()


def test_event_kinds_match_the_proto() -> None:
    assert {k.name for k in EventKind} == _names(resources_pb2.EventKind, "EVENT_KIND_")


def test_user_statuses_match_the_proto() -> None:
    assert {s.name for s in UserStatus} == _names(resources_pb2.UserStatus, "USER_STATUS_")


def test_every_event_kind_has_a_configurable_template() -> None:
    from watchword_server.config import Messages
    from watchword_server.domain.audit.events import EventLog
    from watchword_server.model.records import EventKind

    log = EventLog(Messages(), clock=None, enabled=False)  # type: ignore[arg-type]
    for kind in EventKind:
        if kind is EventKind.APPLICATION:  # its text is the application's, not ours
            continue
        assert log.describe(kind, {"id": "u1", "group": "g", "name": "n", "origin": "o"})
