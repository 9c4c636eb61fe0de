"""Every RPC, fed hostile values in every string field, answers a clear status: never
INTERNAL or UNKNOWN (the brief's rule for bad input)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message

from tests.support.flows import register
from tests.support.servers import Running
from watchword.auth.v1 import access_service_pb2, admin_service_pb2, auth_service_pb2

HOSTILE = ["\x00", "x" * 10_000, "' OR 1=1 --", "\ud7ff\ue000", "00000000-0000-0000-0000-0000"]
MODULES = (auth_service_pb2, access_service_pb2, admin_service_pb2)
SERVICES = [
    (module, service)
    for module in MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
]


def fill(target: message.Message, text: str, depth: int = 0) -> None:
    """Put ``text`` in every string field of ``target`` and of its nested messages."""
    seen_oneofs: set[str] = set()
    for field in target.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
        if field.type == descriptor.FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                getattr(target, field.name).append(text)
            else:
                setattr(target, field.name, text)
        elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE and depth < 2:
            assert field.message_type is not None
            name = field.message_type.full_name
            if name == "google.protobuf.Struct":
                getattr(target, field.name).update({text[:64] or "k": text})
            elif name == "google.protobuf.FieldMask":
                getattr(target, field.name).paths.append(text[:64])
            elif not field.is_repeated:
                fill(getattr(target, field.name), text, depth + 1)


def stub_for(running: Running, service: descriptor.ServiceDescriptor) -> Any:
    return {
        "AuthService": running.auth,
        "AccessService": running.access,
        "AdminService": running.admin,
    }[service.name]


@pytest.mark.parametrize("text", HOSTILE, ids=["nul", "long", "sql", "surrogates", "uuidish"])
async def test_every_rpc_answers_hostile_strings_clearly(watchword: Running, text: str) -> None:
    await register(watchword, "ada@example.com")  # so that some lookups find a row
    failures: list[str] = []
    for module, service in SERVICES:
        stub = stub_for(watchword, service)
        for method in service.methods:
            request = getattr(module, method.input_type.name)()
            fill(request, text)
            call = getattr(stub, method.name)
            try:
                if method.server_streaming:
                    stream = call(request, timeout=0.5)
                    async for _ in stream:
                        break
                    stream.cancel()
                else:
                    await call(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                code = error.code()
                if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                    failures.append(f"{service.name}.{method.name}: {code} {error.details()}")
                elif code == grpc.StatusCode.DEADLINE_EXCEEDED and not method.server_streaming:
                    failures.append(f"{service.name}.{method.name}: hung")
    assert failures == []
