"""Server reflection under both its names: ``grpc.reflection.v1`` and ``v1alpha``.

Newer tools (grpcurl, Postman) ask for ``grpc.reflection.v1.ServerReflection``; older ones
for ``v1alpha``, the only one grpcio-reflection ships. The two protocols are the same
message for message and field for field, only the package differs, so one servicer answers
both, as grpc's C++ and Java servers do. The v1 file descriptor is v1alpha's under v1's
names, added to the pool so that a v1 client can describe the v1 service too.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

__all__ = ["V1_SERVICE_NAME", "V1ALPHA_SERVICE_NAME", "add_reflection"]

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
_V1_PACKAGE = "grpc.reflection.v1"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def add_reflection(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serve reflection of ``service_names`` (and of itself) under both names on ``server``
    (which registers generic handlers only)."""
    _add_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer(
        [*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME]
    )
    # The generated reflection module has no type hints.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_registered_method_handlers(V1_SERVICE_NAME, {"ServerReflectionInfo": v1})


def _add_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return  # a later grpcio-reflection (or a second server in this process) added it
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(file)
    old = f".{file.package}."
    new = f".{_V1_PACKAGE}."
    file.name = _V1_FILE
    file.package = _V1_PACKAGE
    file.options.Clear()  # v1alpha's say deprecated, and name v1alpha's Go and Java homes
    file.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    file.options.java_package = "io.grpc.reflection.v1"
    file.options.java_outer_classname = "ServerReflectionProto"
    file.options.java_multiple_files = True
    for message in file.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # only message fields name a type
                field.type_name = field.type_name.replace(old, new, 1)
    for service in file.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new, 1)
            method.output_type = method.output_type.replace(old, new, 1)
    pool.Add(file)
