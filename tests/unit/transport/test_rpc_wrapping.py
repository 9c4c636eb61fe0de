"""The RPC wrapping (transport/rpc_wrapping.py): RPCs a servicer leaves to the generated
base answer UNIMPLEMENTED with a reason, and domain errors become rich statuses."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from watchword.auth.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
)
from watchword_server.config import Messages
from watchword_server.model.errors import InvalidCredentials
from watchword_server.transport.rpc_wrapping import wrap_servicer


class Aborted(Exception):
    pass


class FakeContext:
    """Records the status a guarded method aborts with."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted()

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AssertionError(f"plain abort {code}: {details}")

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()  # no request id set: the wrapping aborts with the status alone


def reason_of(status: grpc.Status | None) -> tuple[grpc.StatusCode, str]:
    assert status is not None
    rich = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    assert rich.details[0].Unpack(info)
    return status.code, info.reason


class HalfDone(access_service_pb2_grpc.AccessServiceServicer):
    async def HasMembership(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise InvalidCredentials()


ACCESS = access_service_pb2.DESCRIPTOR.services_by_name["AccessService"]
ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]


async def test_unserved_unary_rpc_is_unimplemented_and_errors_are_mapped() -> None:
    half_done = HalfDone()  # type: ignore[abstract]  # leaves two RPCs to the base
    servicer: Any = wrap_servicer(half_done, ACCESS, disabled=(), messages=Messages())
    context = FakeContext()
    with pytest.raises(Aborted):
        await servicer.HasPermission(access_service_pb2.HasPermissionRequest(), context)
    assert reason_of(context.status) == (grpc.StatusCode.UNIMPLEMENTED, "RPC_UNIMPLEMENTED")
    with pytest.raises(Aborted):
        await servicer.HasMembership(access_service_pb2.HasMembershipRequest(), context)
    assert reason_of(context.status) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")


async def test_unserved_stream_rpc_is_unimplemented() -> None:
    # The generated base is abstract to the type checker, though not at run time.
    base = admin_service_pb2_grpc.AdminServiceServicer()  # type: ignore[abstract]
    servicer: Any = wrap_servicer(base, ADMIN, disabled=(), messages=Messages())
    context = FakeContext()
    with pytest.raises(Aborted):
        async for _ in servicer.WatchEvents(admin_service_pb2.WatchEventsRequest(), context):
            pass
    assert reason_of(context.status) == (grpc.StatusCode.UNIMPLEMENTED, "RPC_UNIMPLEMENTED")


def test_wrapping_leaves_the_servicer_as_it_was_so_it_can_be_wrapped_twice() -> None:
    half_done = HalfDone()  # type: ignore[abstract]
    original = half_done.HasMembership
    first: Any = wrap_servicer(half_done, ACCESS, disabled=(), messages=Messages())
    second: Any = wrap_servicer(half_done, ACCESS, disabled=("HasMembership",), messages=Messages())
    assert half_done.HasMembership == original  # still the unwrapped method
    assert first is not half_done and second is not first
    # Each wrapping wraps the servicer's own method, not the other wrapping.
    assert first.HasMembership.__wrapped__ == original
