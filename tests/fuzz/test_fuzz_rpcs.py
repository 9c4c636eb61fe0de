"""Generated requests to every RPC of every service, with and without valid service keys:
whatever arrives, the answer is never INTERNAL or UNKNOWN, and the server stays up.

Requests are built from the messages' descriptors: every field set or not, strings from
the contract's own values (a real user id, session token, group and address) and from
arbitrary text, numbers at their types' edges, enums outside their range, nested messages,
Structs and FieldMasks. ``WATCHWORD_TEST_FUZZ_EXAMPLES`` sets the number of requests per
service (default 60, a few seconds; e.g. 2000 for a long run).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, field_mask_pb2, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.flows import register
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import access_service_pb2, admin_service_pb2, auth_service_pb2
from watchword.auth.v1 import resources_pb2 as resources

EXAMPLES = int(os.environ.get("WATCHWORD_TEST_FUZZ_EXAMPLES", "60"))
SERVICES = [
    auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"],
    access_service_pb2.DESCRIPTOR.services_by_name["AccessService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
]
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
_MAX_DEPTH = 3
_INT_EDGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

# Filled in once the server has a user, a session and a group (see ``known``).
KNOWN: list[str] = []


def _text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(KNOWN) if KNOWN else st.nothing(),
        st.text(max_size=40),
        st.text(max_size=400),
        st.sampled_from(["", " ", "\x00", "a" * 256, "é" * 300, "%s{0}{link}", "../../"]),
    )


def _json() -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20)
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
        ),
        max_leaves=8,
    )


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _text()
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return st.integers(-3, max(v.number for v in field.enum_type.values) + 3)
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    low, high = _INT_EDGES[kind]
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, -1 if low else 1]))


def _message(desc: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(desc)
    if desc.full_name == "google.protobuf.Struct":
        return st.dictionaries(st.text(max_size=20), _json(), max_size=4).map(_struct(cls))
    if desc.full_name == "google.protobuf.FieldMask":
        # The typed class: types-protobuf's Message takes no field keywords.
        return st.builds(field_mask_pb2.FieldMask, paths=st.lists(_text(), max_size=4))
    if depth >= _MAX_DEPTH:
        return st.just(cls())
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for field in desc.fields:
        if field.message_type is not None:
            value: st.SearchStrategy[Any] = _message(field.message_type, depth + 1)
        else:
            value = _scalar(field)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        parts[field.name] = st.none() | value
    return st.fixed_dictionaries(parts).map(_filled(cls))


def _struct(cls: type[Message]) -> Callable[[dict[str, Any]], Message]:
    def build(values: dict[str, Any]) -> Message:
        made = cls()
        made.update(values)  # type: ignore[attr-defined]
        return made

    return build


def _filled(cls: type[Message]) -> Callable[[dict[str, Any]], Message]:
    def build(values: dict[str, Any]) -> Message:
        made = cls()
        for name, value in values.items():
            if value is None:
                continue
            field = made.DESCRIPTOR.fields_by_name[name]
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue  # no map fields in the contract's requests
            try:
                if field.is_repeated:
                    target = getattr(made, name)
                    for item in value:
                        if field.type == FieldDescriptor.TYPE_MESSAGE:
                            target.add().CopyFrom(item)
                        else:
                            target.append(item)
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    getattr(made, name).CopyFrom(value)
                else:
                    setattr(made, name, value)
            except (ValueError, TypeError):  # e.g. a value protobuf itself refuses
                continue
        return made

    return build


def _calls(service: descriptor.ServiceDescriptor) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.sampled_from(list(service.methods)).flatmap(
        lambda method: st.tuples(
            st.just(method),
            _message(method.input_type),
            st.sampled_from(["access", "admin", "none", "wrong"]),
        )
    )


async def _call(running: Running, method: Any, request: Message, key: str) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    secrets = {"access": running.access_key, "admin": running.admin_key, "wrong": "wwk_nope"}
    metadata = (("authorization", f"Bearer {secrets[key]}"),) if key in secrets else ()
    serialize, keep = (lambda m: m.SerializeToString()), (lambda raw: raw)
    try:
        if method.server_streaming:
            stream = running.channel.unary_stream(path, serialize, keep)(
                request, metadata=metadata, timeout=0.5
            )
            async for _ in stream:
                pass
        else:
            await running.channel.unary_unary(path, serialize, keep)(
                request, metadata=metadata, timeout=10
            )
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.fixture
async def fuzzed(start_server: StartServer) -> Running:
    running = await start_server(check_cache_max_staleness=0)
    user_id, token = await register(running, "ada@example.com")
    await running.admin.CreateGroup(
        admin_service_pb2.CreateGroupRequest(group=resources.Group(name="editors"))
    )
    KNOWN[:] = [user_id, token, "ada@example.com", "editors", "users", "read"]
    return running


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_no_generated_request_gets_internal_or_unknown(
    fuzzed: Running, service: descriptor.ServiceDescriptor, data: st.DataObject
) -> None:
    # One server for all of a service's examples (the fixture is not re-run per example):
    # what earlier requests did is part of what later ones meet.
    method, request, key = data.draw(_calls(service))
    code = await _call(fuzzed, method, request, key)
    assert code not in NEVER, f"{method.name} with key {key}: {code} for {request!r}"
    health: Any = health_pb2_grpc.HealthStub(fuzzed.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
