"""Request bodies that are not messages of their RPC's type: INVALID_ARGUMENT for every
RPC of the contract, and only after the service key where the service needs one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from tests.support.rpc_errors import ErrorDetails, details_of
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2, admin_service_pb2, auth_service_pb2

_SERVICES = (
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
    access_service_pb2.DESCRIPTOR.services_by_name["AccessService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
)
_KEYED = {"AccessService", "AdminService"}

# Undecodable as any message: a length running past the end, a varint that never ends.
_CORRUPT = (b"\x0a\x05ab", b"\xff" * 11)


def _methods() -> Iterator[MethodDescriptor]:
    for service in _SERVICES:
        yield from service.methods


def _bad_utf8(method: MethodDescriptor) -> bytes | None:
    # A string field holding bytes that are not UTF-8 (proto3 strings must be).
    for field in method.input_type.fields:
        if field.type == FieldDescriptor.TYPE_STRING and field.number < 16:
            return bytes([field.number << 3 | 2, 2, 0xC3, 0x28])
    return None


async def _call(
    channel: grpc.aio.Channel, method: MethodDescriptor, body: bytes, key: str | None
) -> ErrorDetails:
    path = f"/{method.containing_service.full_name}/{method.name}"
    metadata = (("authorization", f"Bearer {key}"),) if key else ()
    # Without serializers the callables send and return raw bytes.
    try:
        if method.server_streaming:
            streaming: Any = channel.unary_stream(path)
            async for _ in streaming(body, metadata=metadata, timeout=10):
                break
        else:
            unary: Any = channel.unary_unary(path)
            await unary(body, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return details_of(error)
    raise AssertionError(f"{path} accepted an undecodable body")


@pytest.mark.parametrize("method", list(_methods()), ids=lambda method: method.name)
async def test_an_undecodable_body_is_invalid_argument_after_the_key(
    watchword: Running, method: MethodDescriptor
) -> None:
    bodies = [*_CORRUPT]
    utf8 = _bad_utf8(method)
    if utf8 is not None:
        bodies.append(utf8)
    keyed = method.containing_service.name in _KEYED
    for body in bodies:
        if keyed:
            refused = await _call(watchword.channel, method, body, None)
            assert (refused.code, refused.reason) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "SERVICE_KEY_MISSING",
            )
        invalid = await _call(watchword.channel, method, body, watchword.admin_key)
        assert (invalid.code, invalid.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_ARGUMENT",
        ), (method.name, body)
        assert set(invalid.violations) == {"request"}


def _length_delimited(number: int, payload: bytes) -> bytes:
    size, length = len(payload), b""
    while True:
        low, size = size & 0x7F, size >> 7
        length += bytes([low | (0x80 if size else 0)])
        if not size:
            return bytes([number << 3 | 2]) + length + payload


def _nested_struct(depth: int) -> bytes:
    # Struct{"a": Value{struct_value: ...}} down to a string value.
    inner = _length_delimited(3, b"x")
    for _ in range(depth):
        entry = _length_delimited(1, b"a") + _length_delimited(2, inner)
        inner = _length_delimited(5, _length_delimited(1, entry))
    return _length_delimited(1, _length_delimited(1, b"a") + _length_delimited(2, inner))


@pytest.mark.parametrize("depth", [30, 40, 200])
async def test_an_extra_nested_past_any_limit_is_invalid_argument(
    watchword: Running, depth: int
) -> None:
    # Too deep for our limit (30), or for the protobuf decoder's own (40, 200).
    register = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].methods_by_name[
        "Register"
    ]
    request = auth_service_pb2.RegisterRequest(
        email="deep@example.com", password="correct horse battery", first_name="A", last_name="B"
    )
    extra = auth_service_pb2.RegisterRequest.DESCRIPTOR.fields_by_name["extra"].number
    body = request.SerializeToString() + _length_delimited(extra, _nested_struct(depth))
    invalid = await _call(watchword.channel, register, body, None)
    assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT
