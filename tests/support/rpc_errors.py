"""Reads the rich error details (ErrorInfo, BadRequest, LocalizedMessage) of a failed call."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["ErrorDetails", "details_of", "failure"]


@dataclass(frozen=True)
class ErrorDetails:
    code: grpc.StatusCode
    reason: str
    domain: str
    violations: dict[str, str]
    localized: str
    error_infos: int


def details_of(error: grpc.aio.AioRpcError) -> ErrorDetails:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    reason = domain = localized = ""
    violations: dict[str, str] = {}
    infos = 0
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain = info.reason, info.domain
            infos += 1
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.update({v.field: v.description for v in bad.field_violations})
        elif detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
            message = error_details_pb2.LocalizedMessage()
            detail.Unpack(message)
            localized = message.message
    return ErrorDetails(error.code(), reason, domain, violations, localized, infos)


async def failure(call: Awaitable[object]) -> ErrorDetails:
    """Await a call that must fail, and return the details of its status."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return details_of(error)
    raise AssertionError("the call succeeded")
