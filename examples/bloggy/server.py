"""BloggyService: posts in memory, protected with ``watchword.requires``.

- ListPosts and GetPost are open to anyone (exempt from the interceptor).
- CreatePost needs a login: :class:`~watchword.RequireInterceptor` with
  ``is_logged`` guards the whole service, as the auth module's ``RequirePipe`` would.
- DeletePost also needs membership of ``admins``: ``@requires`` on the method.
"""

from __future__ import annotations

import itertools
from typing import Any

import grpc

from examples.bloggy.bloggy.v1 import bloggy_pb2, bloggy_pb2_grpc
from watchword import (
    Guard,
    RequireInterceptor,
    current_context,
    has_membership,
    is_logged,
    requires,
)

__all__ = ["ADMINS", "OPEN_RPCS", "SERVICE", "BloggyServicer", "build_server"]

Context = grpc.aio.ServicerContext[Any, Any]

SERVICE = bloggy_pb2.DESCRIPTOR.services_by_name["BloggyService"].full_name
"""``bloggy.v1.BloggyService``."""
ADMINS = "admins"
"""The Watchword group whose members may delete posts."""
OPEN_RPCS = ("ListPosts", "GetPost")
"""The RPCs anyone may call, logged in or not."""


class BloggyServicer(bloggy_pb2_grpc.BloggyServiceServicer):
    """Serves BloggyService from memory; build the protected server with :func:`build_server`."""

    def __init__(self) -> None:
        self._posts: dict[str, bloggy_pb2.Post] = {}
        self._ids = itertools.count(1)

    async def ListPosts(  # noqa: N802 - gRPC method names
        self, request: bloggy_pb2.ListPostsRequest, context: Context
    ) -> bloggy_pb2.ListPostsResponse:
        return bloggy_pb2.ListPostsResponse(posts=reversed(self._posts.values()))

    async def GetPost(  # noqa: N802
        self, request: bloggy_pb2.GetPostRequest, context: Context
    ) -> bloggy_pb2.GetPostResponse:
        return bloggy_pb2.GetPostResponse(post=await self._find(request.post_id, context))

    async def CreatePost(  # noqa: N802
        self, request: bloggy_pb2.CreatePostRequest, context: Context
    ) -> bloggy_pb2.CreatePostResponse:
        if not request.title.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a post needs a title")
        # The interceptor's is_logged check fetched the user already; this asks no one.
        author = await current_context().user()
        if author is None:  # not reached: the interceptor lets only logged-in users in
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "login required")
        post = bloggy_pb2.Post(
            id=str(next(self._ids)), title=request.title, body=request.body, author_id=author.id
        )
        self._posts[post.id] = post
        return bloggy_pb2.CreatePostResponse(post=post)

    @requires(has_membership(ADMINS))
    async def DeletePost(  # noqa: N802
        self, request: bloggy_pb2.DeletePostRequest, context: Context
    ) -> bloggy_pb2.DeletePostResponse:
        await self._find(request.post_id, context)
        del self._posts[request.post_id]
        return bloggy_pb2.DeletePostResponse()

    async def _find(self, post_id: str, context: Context) -> bloggy_pb2.Post:
        post = self._posts.get(post_id)
        if post is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no post {post_id!r}")
        return post


def build_server(guard: Guard, listen: str = "127.0.0.1:0") -> tuple[grpc.aio.Server, int]:
    """A server for BloggyService, not started yet, and the port it is bound to.

    Args:
        guard: Asks Watchword about the callers' sessions. ``@requires`` on DeletePost
            takes it from the interceptor, so no global configuration is needed.
        listen: ``host:port`` to bind; port 0 picks a free one.
    """
    interceptor = RequireInterceptor(is_logged, guard=guard, exempt=OPEN_RPCS, services=[SERVICE])
    server = grpc.aio.server(interceptors=[interceptor])
    bloggy_pb2_grpc.add_BloggyServiceServicer_to_server(BloggyServicer(), server)
    port = server.add_insecure_port(listen)
    return server, port
