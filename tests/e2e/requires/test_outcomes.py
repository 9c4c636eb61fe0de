"""watchword.requires on a real grpc.aio service, checked by a live Watchword.

What a protected method answers without a session and with ``otherwise``, and where the
token comes from.
"""

from __future__ import annotations

import grpc
import pytest

from examples.bloggy.bloggy.v1 import bloggy_pb2
from tests.support.flows import register
from tests.support.requires_demo import (
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    Blog,
    Context,
    CountingClient,
    bearer,
    get,
    serving,
    status_of,
    stub,
)
from tests.support.servers import Running
from watchword import (
    Denial,
    Guard,
    RequireContext,
    configure,
    has_membership,
    is_logged,
    requires,
)
from watchword.auth.v1 import auth_service_pb2 as auth

# --- outcomes without otherwise -------------------------------------------------------


async def test_no_or_invalid_session_is_unauthenticated(watchword: Running, guard: Guard) -> None:
    class Protected(Blog):
        @requires(has_membership("admins"), guard=guard)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

    _, token = await register(watchword, "ada@example.com")
    async with serving(Protected()) as channel:
        blog = stub(channel)
        code, message = await status_of(blog.GetPost(get()))
        assert code == UNAUTHENTICATED
        assert "authorization: Bearer <token>" in message
        code, message = await status_of(blog.GetPost(get(), metadata=bearer("forged")))
        assert (code, message) == (
            UNAUTHENTICATED,
            "the session is invalid or expired: log in again",
        )
        wrong_scheme = (("authorization", f"Basic {token}"),)
        assert (await status_of(blog.GetPost(get(), metadata=wrong_scheme)))[0] == UNAUTHENTICATED
        # Logged in but not a member.
        code, message = await status_of(blog.GetPost(get(), metadata=bearer(token)))
        assert (code, message) == (PERMISSION_DENIED, "permission denied for GetPost")
        await watchword.auth.Logout(auth.LogoutRequest(session_token=token))
        assert (await status_of(blog.GetPost(get(), metadata=bearer(token))))[0] == UNAUTHENTICATED


# --- otherwise ------------------------------------------------------------------------


async def test_otherwise_can_answer_with_a_response(watchword: Running, guard: Guard) -> None:
    denials: list[Denial] = []

    def sign_in_first(ctx: RequireContext) -> bloggy_pb2.GetPostResponse:
        assert ctx.denial is not None
        denials.append(ctx.denial)
        return bloggy_pb2.GetPostResponse(post=bloggy_pb2.Post(title="log in to read"))

    async def writers_only(ctx: RequireContext) -> bloggy_pb2.CreatePostResponse:
        assert ctx.denial is not None
        denials.append(ctx.denial)
        return bloggy_pb2.CreatePostResponse(post=bloggy_pb2.Post(title="not a writer"))

    class Protected(Blog):
        @requires(is_logged, sign_in_first, guard=guard)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

        @requires(has_membership("writers"), otherwise=writers_only, guard=guard)
        async def CreatePost(  # noqa: N802
            self, request: bloggy_pb2.CreatePostRequest, context: Context
        ) -> bloggy_pb2.CreatePostResponse:
            return await super().CreatePost(request, context)

    _, token = await register(watchword, "ada@example.com")
    async with serving(Protected()) as channel:
        blog = stub(channel)
        assert (await blog.GetPost(get())).post.title == "log in to read"
        assert (await blog.GetPost(get(), metadata=bearer(token))).post.title == "secret"
        create = bloggy_pb2.CreatePostRequest(title="mine")
        reply = await blog.CreatePost(create, metadata=bearer(token))
        assert reply.post.title == "not a writer"
    assert [denial.code for denial in denials] == [UNAUTHENTICATED, PERMISSION_DENIED]


async def test_otherwise_can_choose_the_status(watchword: Running, guard: Guard) -> None:
    class Protected(Blog):
        @requires(has_membership("staff"), grpc.StatusCode.NOT_FOUND, guard=guard)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

        @requires(has_membership("staff"), (grpc.StatusCode.NOT_FOUND, "no such post"), guard=guard)
        async def DeletePost(  # noqa: N802
            self, request: bloggy_pb2.DeletePostRequest, context: Context
        ) -> bloggy_pb2.DeletePostResponse:
            return await super().DeletePost(request, context)

        @requires(has_membership("staff"), lambda ctx: None, guard=guard)  # None: the default
        async def CreatePost(  # noqa: N802
            self, request: bloggy_pb2.CreatePostRequest, context: Context
        ) -> bloggy_pb2.CreatePostResponse:
            return await super().CreatePost(request, context)

    async def by_reason(ctx: RequireContext) -> tuple[grpc.StatusCode, str]:
        assert ctx.denial is not None
        if ctx.denial.code == UNAUTHENTICATED:
            return grpc.StatusCode.FAILED_PRECONDITION, "log in first"
        return grpc.StatusCode.FAILED_PRECONDITION, "join the staff"

    class Listing(Protected):
        @requires(has_membership("staff"), by_reason, guard=guard)
        async def ListPosts(  # noqa: N802
            self, request: bloggy_pb2.ListPostsRequest, context: Context
        ) -> bloggy_pb2.ListPostsResponse:
            return await super().ListPosts(request, context)

    _, token = await register(watchword, "ada@example.com")
    user = bearer(token)
    async with serving(Listing()) as channel:
        blog = stub(channel)
        assert (await status_of(blog.GetPost(get(), metadata=user)))[0] == grpc.StatusCode.NOT_FOUND
        delete = blog.DeletePost(bloggy_pb2.DeletePostRequest(post_id="1"), metadata=user)
        assert await status_of(delete) == (grpc.StatusCode.NOT_FOUND, "no such post")
        create = blog.CreatePost(bloggy_pb2.CreatePostRequest(title="x"), metadata=user)
        assert (await status_of(create))[0] == PERMISSION_DENIED
        listing = bloggy_pb2.ListPostsRequest()
        assert await status_of(blog.ListPosts(listing)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "log in first",
        )
        assert await status_of(blog.ListPosts(listing, metadata=user)) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "join the staff",
        )


# --- where the token comes from -------------------------------------------------------


async def test_custom_header_and_scheme(watchword: Running, client: CountingClient) -> None:
    bare = Guard(client, header="X-Session-Token", scheme=None)
    token_scheme = Guard(client, scheme="Token")

    class Protected(Blog):
        @requires(is_logged, guard=bare)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

        @requires(is_logged, guard=token_scheme)
        async def ListPosts(  # noqa: N802
            self, request: bloggy_pb2.ListPostsRequest, context: Context
        ) -> bloggy_pb2.ListPostsResponse:
            return await super().ListPosts(request, context)

    _, token = await register(watchword, "ada@example.com")
    async with serving(Protected()) as channel:
        blog = stub(channel)
        assert (await blog.GetPost(get(), metadata=(("x-session-token", token),))).post.id == "1"
        code, message = await status_of(blog.GetPost(get(), metadata=bearer(token)))
        assert code == UNAUTHENTICATED
        assert "'x-session-token' metadata" in message
        listing = bloggy_pb2.ListPostsRequest()
        await blog.ListPosts(listing, metadata=(("authorization", f"token {token}"),))
        code, _ = await status_of(blog.ListPosts(listing, metadata=bearer(token)))
        assert code == UNAUTHENTICATED


async def test_configure_sets_the_default_guard(
    watchword: Running, client: CountingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("watchword._guard._default", None)

    class Protected(Blog):
        @requires(is_logged)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

    _, token = await register(watchword, "ada@example.com")
    async with serving(Protected()) as channel:
        blog = stub(channel)
        # Decorating needs no guard; calling does.
        assert (await status_of(blog.GetPost(get())))[0] == grpc.StatusCode.UNKNOWN
        configure(client, header="session")
        assert (await blog.GetPost(get(), metadata=(("session", f"Bearer {token}"),))).post.id
        assert (await status_of(blog.GetPost(get(), metadata=bearer(token))))[0] == UNAUTHENTICATED
