"""The client package's public surface: ``__all__``, one method per RPC, the error types."""

from __future__ import annotations

import inspect
import pickle
import re
import tomllib
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

import watchword
from watchword import AsyncClient, Client
from watchword.auth.v1 import (
    access_service_pb2,
    admin_service_pb2,
    auth_service_pb2,
    error_reason_pb2,
)
from watchword.client import AsyncEventStream, EventStream

CLIENT_PYPROJECT = Path(__file__).parents[2] / "clients" / "python" / "pyproject.toml"


def test_all_is_pinned() -> None:
    assert sorted(watchword.__all__) == [
        "Aborted",
        "AlreadyExists",
        "AsyncClient",
        "Cancelled",
        "CheckResult",
        "Client",
        "Condition",
        "ConditionLike",
        "DataLoss",
        "DeadlineExceeded",
        "Denial",
        "FailedPrecondition",
        "FieldViolation",
        "Guard",
        "Internal",
        "InvalidArgument",
        "MembershipCheck",
        "NotFound",
        "Otherwise",
        "OutOfRange",
        "PermissionCheck",
        "PermissionDenied",
        "Record",
        "RequireContext",
        "RequireInterceptor",
        "ResourceExhausted",
        "Unauthenticated",
        "Unavailable",
        "Undecidable",
        "Unimplemented",
        "Unknown",
        "WatchwordError",
        "__version__",
        "configure",
        "current_context",
        "from_rpc_error",
        "from_status",
        "has_membership",
        "has_permission",
        "is_logged",
        "requires",
    ]
    for name in watchword.__all__:
        assert hasattr(watchword, name), name


def test_version_matches_the_package_metadata() -> None:
    project = tomllib.loads(CLIENT_PYPROJECT.read_text())["project"]
    # pyproject.toml reads the version from __version__ (tests/unit/test_packaging.py ties
    # that to the repository's VERSION).
    assert project["dynamic"] == ["version"]
    assert watchword.__version__ == metadata.version("watchword-client")
    # googleapis-common-protos: the generated BatchCheck messages use its google.rpc.Status.
    assert sorted(project["dependencies"]) == [
        "googleapis-common-protos>=1.76",
        "grpcio>=1.85.1",
        "protobuf>=7.36.2",
    ]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


RPCS = [
    (service.name, method.name)
    for module in (auth_service_pb2, access_service_pb2, admin_service_pb2)
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
ITERATORS = ["iter_users", "iter_groups", "iter_memberships", "iter_permissions", "iter_events"]


def test_the_three_services_are_covered() -> None:
    assert {service for service, _ in RPCS} == {"AuthService", "AccessService", "AdminService"}
    assert len(RPCS) == 15 + 6 + 3 + 25 + 1


def _public_methods(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name[0] != "_"}


def test_both_clients_have_the_same_methods() -> None:
    expected = {_snake(rpc) for _, rpc in RPCS} | set(ITERATORS) | {"close"}
    assert _public_methods(AsyncClient) == expected
    assert _public_methods(Client) == expected


@pytest.mark.parametrize(("service", "rpc"), RPCS)
def test_every_rpc_has_a_keyword_only_method(service: str, rpc: str) -> None:
    name = _snake(rpc)
    async_method = getattr(AsyncClient, name)
    sync_method = getattr(Client, name)
    if rpc == "WatchEvents":
        assert not inspect.iscoroutinefunction(async_method)
        assert inspect.signature(async_method).return_annotation == "AsyncEventStream"
        assert inspect.signature(sync_method).return_annotation == "EventStream"
    else:
        assert inspect.iscoroutinefunction(async_method)
        assert not inspect.iscoroutinefunction(sync_method)

    async_signature = inspect.signature(async_method)
    sync_signature = inspect.signature(sync_method)
    assert list(async_signature.parameters.values()) == list(sync_signature.parameters.values())
    self, *arguments = async_signature.parameters.values()
    assert self.name == "self"
    assert all(a.kind is inspect.Parameter.KEYWORD_ONLY for a in arguments)
    assert [a.name for a in arguments][-2:] == ["timeout", "metadata"]


@pytest.mark.parametrize("name", ITERATORS)
def test_iterators_follow_page_tokens_on_both_clients(name: str) -> None:
    assert inspect.isasyncgenfunction(getattr(AsyncClient, name))
    assert inspect.isgeneratorfunction(getattr(Client, name))
    async_signature = inspect.signature(getattr(AsyncClient, name))
    sync_signature = inspect.signature(getattr(Client, name))
    assert async_signature.parameters == sync_signature.parameters


def test_constructors_match_the_contract() -> None:
    parameters = inspect.signature(AsyncClient).parameters
    assert list(parameters) == [
        "target",
        "service_key",
        "credentials",
        "channel",
        "timeout",
        "metadata",
        "options",
        "read_your_writes",
    ]
    assert parameters["timeout"].default == 10.0
    assert parameters["read_your_writes"].default is True
    assert list(inspect.signature(Client).parameters) == list(parameters)
    assert issubclass(AsyncEventStream, AsyncIterator)
    assert issubclass(EventStream, Iterator)


def test_one_error_class_per_status_code() -> None:
    classes = [
        getattr(watchword, name)
        for name in watchword.__all__
        if isinstance(getattr(watchword, name), type)
        and issubclass(getattr(watchword, name), watchword.WatchwordError)
        and name != "WatchwordError"
    ]
    assert {cls.code for cls in classes} == set(grpc.StatusCode) - {grpc.StatusCode.OK}
    for cls in classes:
        # googleapis python-api-core naming: CamelCase of the code, "Cancelled" British.
        assert cls.__name__.upper() == cls.code.name.replace("_", ""), cls


def _rich_error(code: grpc.StatusCode, *details: object) -> grpc.aio.AioRpcError:
    status = status_pb2.Status(code=code.value[0], message="status message")
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)  # type: ignore[arg-type]
        status.details.append(packed)
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, "status message")


def test_rich_details_are_decoded_from_google_rpc_messages() -> None:
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="password", description="too short"),
            error_details_pb2.BadRequest.FieldViolation(field="email", description="invalid"),
        ]
    )
    error = watchword.from_rpc_error(
        _rich_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            error_details_pb2.ErrorInfo(
                reason="INVALID_ARGUMENT", domain="watchword.auth.v1", metadata={"k": "v"}
            ),
            bad_request,
            error_details_pb2.LocalizedMessage(locale="en-US", message="Check your input"),
        )
    )
    assert type(error) is watchword.InvalidArgument
    assert (error.reason, error.domain, error.metadata) == (
        "INVALID_ARGUMENT",
        "watchword.auth.v1",
        {"k": "v"},
    )
    assert error.violations == (
        watchword.FieldViolation("password", "too short"),
        watchword.FieldViolation("email", "invalid"),
    )
    assert error.violation_fields == {"password", "email"}
    assert error.message == "Check your input"
    assert error.details == "status message"
    assert str(error) == ("INVALID_ARGUMENT: status message [password: too short; email: invalid]")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (type(copy), copy.code, copy.violations) == (
        watchword.InvalidArgument,
        error.code,
        error.violations,
    )


def test_errors_without_rich_details() -> None:
    plain = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "Deadline"
    )
    error = watchword.from_rpc_error(plain)
    assert type(error) is watchword.DeadlineExceeded
    assert (error.reason, error.message, error.violations) == ("", "Deadline", ())

    assert type(watchword.from_rpc_error(grpc.RpcError())) is watchword.Unknown

    garbled = grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\x00garbage"))
    broken = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), garbled, "oops")
    error = watchword.from_rpc_error(broken)
    assert (type(error), error.message) == (watchword.Internal, "oops")

    unknown_detail = watchword.from_rpc_error(
        _rich_error(grpc.StatusCode.NOT_FOUND, status_pb2.Status(code=code_pb2.NOT_FOUND))
    )
    assert (type(unknown_detail), unknown_detail.reason) == (watchword.NotFound, "")


def test_details_are_matched_by_type_name_whatever_the_host_of_their_url() -> None:
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(reason="SESSION_INVALID", domain="watchword.auth.v1"),
        type_url_prefix="example.com/types/",
    )
    status = status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message="no", details=[info])
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))

    error = watchword.from_rpc_error(
        grpc.aio.AioRpcError(grpc.StatusCode.UNAUTHENTICATED, grpc.aio.Metadata(), trailing, "no")
    )

    assert (type(error), error.reason) == (watchword.Unauthenticated, "SESSION_INVALID")


def test_overloaded_is_resource_exhausted_with_retry_after() -> None:
    delay = duration_pb2.Duration(seconds=3, nanos=500_000_000)
    error = watchword.from_rpc_error(
        _rich_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            error_details_pb2.ErrorInfo(
                reason="OVERLOADED", domain="watchword.auth.v1", metadata={"retry_after": "3"}
            ),
            error_details_pb2.RetryInfo(retry_delay=delay),
            error_details_pb2.LocalizedMessage(locale="en-US", message="Busy, try again"),
        )
    )
    assert type(error) is watchword.ResourceExhausted
    assert (error.reason, error.metadata, error.message) == (
        "OVERLOADED",
        {"retry_after": "3"},
        "Busy, try again",
    )
    assert error.retry_after == 3.5  # RetryInfo is the precise one
    assert error_reason_pb2.ErrorReason.Name(error_reason_pb2.ERROR_REASON_OVERLOADED) == (
        "ERROR_REASON_" + error.reason
    )

    # Without RetryInfo, the ErrorInfo metadata says it; without either, nothing does.
    throttled = watchword.from_rpc_error(
        _rich_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            error_details_pb2.ErrorInfo(reason="TOO_MANY_ATTEMPTS", metadata={"retry_after": "7"}),
        )
    )
    assert throttled.retry_after == 7.0
    plain = watchword.from_rpc_error(
        _rich_error(grpc.StatusCode.NOT_FOUND, error_details_pb2.ErrorInfo(reason="X"))
    )
    assert plain.retry_after is None
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert copy.retry_after == 3.5


def test_from_status_decodes_a_google_rpc_status() -> None:
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="SESSION_INVALID", domain="watchword.auth.v1"))
    status = status_pb2.Status(
        code=code_pb2.UNAUTHENTICATED, message="The session is invalid", details=[info]
    )
    error = watchword.from_status(status)
    assert type(error) is watchword.Unauthenticated
    assert (error.reason, error.domain, error.message, error.details) == (
        "SESSION_INVALID",
        "watchword.auth.v1",
        "The session is invalid",
        "The session is invalid",
    )
    # Sent as an error, so never taken for success: OK and unknown numbers are Unknown.
    for code in (code_pb2.OK, 99):
        odd = watchword.from_status(status_pb2.Status(code=code, message="odd"))
        assert type(odd) is watchword.Unknown
        assert odd.code == grpc.StatusCode.UNKNOWN
