"""The calls the benchmark repeats, each with the exact answer it must get.

The expected answer is not written down but asked for: each call is made once with a
normal gRPC client and its reply is what every repetition must match in size (check
answers carry a ``revision`` that depends on the server's history). Nothing writes during
a check run, so the answer cannot change under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from bench.h2load import Answer, Call
from watchword.auth.v1 import access_service_pb2 as access
from watchword.auth.v1 import auth_service_pb2 as auth

__all__ = [
    "BATCH_SIZE",
    "authenticate",
    "batch_check",
    "health",
    "has_membership",
    "has_permission",
    "introspect",
    "login",
]

M = TypeVar("M", bound=Message)

BATCH_SIZE = 100
_ACCESS = "/watchword.auth.v1.AccessService/"
_AUTH = "/watchword.auth.v1.AuthService/"
_PROBE_TIMEOUT = 30.0


def _ask(
    target: str, method: str, request: Message, reply_type: type[M], metadata: Mapping[str, str]
) -> M:
    """One call with a plain gRPC client; its reply (errors raise)."""
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary(
            method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=reply_type.FromString,
        )
        reply: M = unary(request, metadata=tuple(metadata.items()), timeout=_PROBE_TIMEOUT)
        return reply


def _keyed(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def _expecting(
    target: str, method: str, request: Message, reply_type: type[Message], key: str | None
) -> Call:
    reply = _ask(target, method, request, reply_type, _keyed(key))
    return Call(method, request, Answer.exactly(reply), _keyed(key))


def health(target: str) -> Call:
    """``grpc.health.v1.Health/Check``: the stack's no-op, every ratio's reference."""
    return _expecting(
        target,
        "/grpc.health.v1.Health/Check",
        health_pb2.HealthCheckRequest(),
        health_pb2.HealthCheckResponse,
        None,
    )


def has_permission(target: str, key: str, user_id: str, record_id: str = "42") -> Call:
    """HasPermission by user id: ``edit`` on a ``posts`` record."""
    request = access.HasPermissionRequest(
        user_id=user_id, name="edit", table_name="posts", record_id=record_id
    )
    return _expecting(target, _ACCESS + "HasPermission", request, access.HasPermissionResponse, key)


def has_membership(target: str, key: str, session_token: str, group: str) -> Call:
    """HasMembership by session token (which is checked too)."""
    request = access.HasMembershipRequest(session_token=session_token, group=group)
    return _expecting(target, _ACCESS + "HasMembership", request, access.HasMembershipResponse, key)


def introspect(target: str, session_token: str) -> Call:
    """Introspect: validate a session (its window does not slide within a run)."""
    request = auth.IntrospectRequest(session_token=session_token)
    return _expecting(target, _AUTH + "Introspect", request, auth.IntrospectResponse, None)


def batch_check(target: str, key: str, user_id: str) -> Call:
    """BatchCheck of :data:`BATCH_SIZE` distinct permission checks (records 0 to 99)."""
    request = access.BatchCheckRequest(
        checks=[
            access.Check(
                permission=access.HasPermissionRequest(
                    user_id=user_id, name="edit", table_name="posts", record_id=str(record)
                )
            )
            for record in range(BATCH_SIZE)
        ]
    )
    method = _ACCESS + "BatchCheck"
    reply = _ask(target, method, request, access.BatchCheckResponse, _keyed(key))
    # A failed item is an answer too (its own error), so the byte count cannot tell it.
    failed = [index for index, result in enumerate(reply.results) if result.HasField("error")]
    if len(reply.results) != BATCH_SIZE or failed:
        raise RuntimeError(f"BatchCheck answered {len(reply.results)} results, errors at {failed}")
    return Call(method, request, Answer.exactly(reply), _keyed(key))


def login(target: str, email: str, password: str) -> str:
    """Log in once; the session token."""
    request = auth.AuthenticateRequest(email=email, password=password)
    reply = _ask(target, _AUTH + "Authenticate", request, auth.AuthenticateResponse, {})
    return reply.session_token


def authenticate(target: str, email: str, password: str) -> Call:
    """Authenticate: its answer's size varies (the expiry's nanoseconds), see h2load."""
    request = auth.AuthenticateRequest(email=email, password=password)
    reply = _ask(target, _AUTH + "Authenticate", request, auth.AuthenticateResponse, {})
    smallest, largest = auth.AuthenticateResponse(), auth.AuthenticateResponse()
    smallest.CopyFrom(reply)
    largest.CopyFrom(reply)
    # A varint of 0 is left out; 999,999,999 takes the most bytes nanos can.
    smallest.expire_time.nanos = 0
    largest.expire_time.nanos = 999_999_999
    return Call(_AUTH + "Authenticate", request, Answer.between(smallest, largest), {})
