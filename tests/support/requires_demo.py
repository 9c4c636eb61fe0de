"""The demo service ``watchword.requires`` protects in tests/e2e/requires/: the bloggy
servicer, a client that counts its calls, a clock for the guard's cache, and short helpers
to serve it and call it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import grpc

from examples.bloggy.bloggy.v1 import bloggy_pb2, bloggy_pb2_grpc
from tests.support.servers import Running
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.auth.v1 import resources_pb2
from watchword.client import USE_CLIENT_DEFAULT, AsyncClient, CallMetadata, Timeout

__all__ = [
    "Blog",
    "Context",
    "CountingClient",
    "PERMISSION_DENIED",
    "SERVICE",
    "Stub",
    "UNAUTHENTICATED",
    "bearer",
    "get",
    "join",
    "serving",
    "status_of",
    "stub",
]


Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Stub: TypeAlias = "bloggy_pb2_grpc.BloggyServiceAsyncStub"
SERVICE = "bloggy.v1.BloggyService"
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


class Blog(bloggy_pb2_grpc.BloggyServiceServicer):
    """Answers every RPC at once; tests subclass it to protect what they check."""

    async def ListPosts(  # noqa: N802 - gRPC method names
        self, request: bloggy_pb2.ListPostsRequest, context: Context
    ) -> bloggy_pb2.ListPostsResponse:
        return bloggy_pb2.ListPostsResponse(posts=[bloggy_pb2.Post(id="1", title="open")])

    async def GetPost(  # noqa: N802
        self, request: bloggy_pb2.GetPostRequest, context: Context
    ) -> bloggy_pb2.GetPostResponse:
        return bloggy_pb2.GetPostResponse(post=bloggy_pb2.Post(id=request.post_id, title="secret"))

    async def CreatePost(  # noqa: N802
        self, request: bloggy_pb2.CreatePostRequest, context: Context
    ) -> bloggy_pb2.CreatePostResponse:
        return bloggy_pb2.CreatePostResponse(post=bloggy_pb2.Post(id="2", title=request.title))

    async def DeletePost(  # noqa: N802
        self, request: bloggy_pb2.DeletePostRequest, context: Context
    ) -> bloggy_pb2.DeletePostResponse:
        return bloggy_pb2.DeletePostResponse()


class CountingClient(AsyncClient):
    """Counts the questions a guard asks Watchword."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    async def introspect(
        self,
        *,
        session_token: str,
        timeout: Timeout = USE_CLIENT_DEFAULT,
        metadata: CallMetadata = (),
    ) -> auth.IntrospectResponse:
        self.calls.append("introspect")
        return await super().introspect(
            session_token=session_token, timeout=timeout, metadata=metadata
        )

    async def has_membership(
        self,
        *,
        group: str,
        user_id: str | None = None,
        session_token: str | None = None,
        min_revision: str | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
        metadata: CallMetadata = (),
    ) -> bool:
        self.calls.append(f"membership {group}")
        return await super().has_membership(
            group=group,
            user_id=user_id,
            session_token=session_token,
            min_revision=min_revision,
            timeout=timeout,
            metadata=metadata,
        )


@asynccontextmanager
async def serving(
    servicer: Blog | None = None,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    handlers: Sequence[grpc.GenericRpcHandler] = (),
) -> AsyncIterator[grpc.aio.Channel]:
    """A grpc.aio server on port 0 with ``servicer`` (and ``handlers``); a channel to it."""
    server = grpc.aio.server(interceptors=list(interceptors))
    if servicer is not None:
        bloggy_pb2_grpc.add_BloggyServiceServicer_to_server(servicer, server)
    server.add_generic_rpc_handlers(handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


def stub(channel: grpc.aio.Channel) -> Stub:
    return bloggy_pb2_grpc.BloggyServiceStub(channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    """The status a call ends with (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), str(error.details())
    return grpc.StatusCode.OK, ""


async def join(running: Running, group: str, user_id: str) -> None:
    await running.admin.CreateGroup(admin.CreateGroupRequest(group=resources_pb2.Group(name=group)))
    await running.admin.AddMembership(admin.AddMembershipRequest(group=group, user_id=user_id))


def get(post_id: str = "1") -> bloggy_pb2.GetPostRequest:
    return bloggy_pb2.GetPostRequest(post_id=post_id)
