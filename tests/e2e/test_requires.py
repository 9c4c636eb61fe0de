"""watchword.requires protecting a real grpc.aio service, checked by a live Watchword:
the decorator, the interceptor, ``otherwise``, conditions, the cache and failures."""

from __future__ import annotations

import importlib
import logging
import operator
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any, TypeAlias, cast

import grpc
import pytest
from google.rpc import status_pb2

from examples.bloggy.bloggy.v1 import bloggy_pb2, bloggy_pb2_grpc
from tests.support.flows import register
from tests.support.recording import Recorder
from tests.support.servers import Running, StartServer
from watchword.auth.v1 import access_service_pb2, resources_pb2
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.client import USE_CLIENT_DEFAULT, AsyncClient, CallMetadata, Timeout
from watchword.errors import Unauthenticated
from watchword.requires import (
    Condition,
    Denial,
    Guard,
    RequireContext,
    RequireInterceptor,
    configure,
    current_context,
    has_membership,
    has_permission,
    is_logged,
    requires,
)

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


class Clock:
    """Seconds that move only when told, for the guard's cache."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client(watchword: Running) -> AsyncIterator[CountingClient]:
    async with CountingClient(watchword.address, service_key=watchword.access_key) as client:
        yield client


@pytest.fixture
def guard(client: CountingClient) -> Guard:
    return Guard(client)


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


# --- conditions -----------------------------------------------------------------------


async def test_async_callable_conditions_and_combinations(watchword: Running, guard: Guard) -> None:
    ada, ada_token = await register(watchword, "ada@example.com")
    bob, bob_token = await register(watchword, "bob@example.com")
    root, root_token = await register(watchword, "root@example.com")
    await join(watchword, "admins", root)
    authors = {"1": ada, "2": bob}

    async def owns_post(ctx: RequireContext) -> bool:
        user = await ctx.user()
        return user is not None and authors.get(ctx.request.post_id) == user.id

    class Protected(Blog):
        @requires(owns_post | has_membership("admins"), guard=guard)
        async def DeletePost(  # noqa: N802
            self, request: bloggy_pb2.DeletePostRequest, context: Context
        ) -> bloggy_pb2.DeletePostResponse:
            return await super().DeletePost(request, context)

        @requires(is_logged & (lambda ctx: bool(ctx.request.title.strip())), guard=guard)
        async def CreatePost(  # noqa: N802
            self, request: bloggy_pb2.CreatePostRequest, context: Context
        ) -> bloggy_pb2.CreatePostResponse:
            return await super().CreatePost(request, context)

        @requires(~is_logged, guard=guard)  # e.g. a sign-up page: anonymous callers only
        async def ListPosts(  # noqa: N802
            self, request: bloggy_pb2.ListPostsRequest, context: Context
        ) -> bloggy_pb2.ListPostsResponse:
            return await super().ListPosts(request, context)

    async with serving(Protected()) as channel:
        blog = stub(channel)

        async def delete(post_id: str, token: str | None) -> grpc.StatusCode:
            metadata = bearer(token) if token else None
            request = bloggy_pb2.DeletePostRequest(post_id=post_id)
            return (await status_of(blog.DeletePost(request, metadata=metadata)))[0]

        assert await delete("1", ada_token) == grpc.StatusCode.OK
        assert await delete("1", bob_token) == PERMISSION_DENIED
        assert await delete("2", bob_token) == grpc.StatusCode.OK
        assert await delete("1", root_token) == grpc.StatusCode.OK
        assert await delete("1", None) == UNAUTHENTICATED
        assert await delete("1", "forged") == UNAUTHENTICATED

        titled = bloggy_pb2.CreatePostRequest(title="Hello")
        untitled = bloggy_pb2.CreatePostRequest(title=" ")
        assert (await blog.CreatePost(titled, metadata=bearer(ada_token))).post.title == "Hello"
        code, _ = await status_of(blog.CreatePost(untitled, metadata=bearer(ada_token)))
        assert code == PERMISSION_DENIED
        assert (await status_of(blog.CreatePost(titled)))[0] == UNAUTHENTICATED

        listing = bloggy_pb2.ListPostsRequest()
        assert len((await blog.ListPosts(listing)).posts) == 1
        code, _ = await status_of(blog.ListPosts(listing, metadata=bearer(ada_token)))
        assert code == PERMISSION_DENIED


async def test_has_permission_with_the_record_from_the_request(
    watchword: Running, guard: Guard
) -> None:
    ada, token = await register(watchword, "ada@example.com")
    await join(watchword, "editors", ada)
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="editors", name="delete", table_name="Post", record_id="1")
    )
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="editors", name="read", table_name="Post", record_id="7")
    )

    class Protected(Blog):
        @requires(
            has_permission("delete", "Post", record=lambda request: request.post_id), guard=guard
        )
        async def DeletePost(  # noqa: N802
            self, request: bloggy_pb2.DeletePostRequest, context: Context
        ) -> bloggy_pb2.DeletePostResponse:
            return await super().DeletePost(request, context)

        @requires(has_permission("read", "Post", record=7), guard=guard)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

        @requires(has_permission("delete", "Post"), guard=guard)  # a check is precise
        async def ListPosts(  # noqa: N802
            self, request: bloggy_pb2.ListPostsRequest, context: Context
        ) -> bloggy_pb2.ListPostsResponse:
            return await super().ListPosts(request, context)

    async with serving(Protected()) as channel:
        blog = stub(channel)
        user = bearer(token)

        async def delete(post_id: str) -> grpc.StatusCode:
            request = bloggy_pb2.DeletePostRequest(post_id=post_id)
            return (await status_of(blog.DeletePost(request, metadata=user)))[0]

        assert await delete("1") == grpc.StatusCode.OK
        assert await delete("2") == PERMISSION_DENIED
        # A record id Watchword refuses outright (a NUL) is a denial, not an outage.
        assert await delete("1\x00") == PERMISSION_DENIED
        assert (await blog.GetPost(get(), metadata=user)).post.id == "1"
        code, _ = await status_of(blog.ListPosts(bloggy_pb2.ListPostsRequest(), metadata=user))
        assert code == PERMISSION_DENIED


async def test_undecided_checks_are_refused_not_negated(watchword: Running) -> None:
    # A membership or permission asked without a valid session, or a question Watchword
    # refuses (a record id with a NUL), is undecided: ~ must not turn it into a pass.
    _, ada_token = await register(watchword, "ada@example.com")
    troll, troll_token = await register(watchword, "troll@example.com")
    await join(watchword, "banned", troll)
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(
            group="banned", name="banned_from", table_name="Post", record_id="3"
        )
    )

    async def not_banned(ctx: RequireContext) -> bool:  # the same, by hand
        return not await ctx.has_membership("banned")

    def public(ctx: RequireContext) -> bool:
        return bool(ctx.request.title == "public")

    async with CountingClient(watchword.address, service_key=watchword.access_key) as client:
        cached = Guard(client, cache_ttl=60)

        class Protected(Blog):
            @requires(
                is_logged & ~has_permission("banned_from", "Post", record=lambda r: r.post_id),
                guard=cached,
            )
            async def DeletePost(  # noqa: N802
                self, request: bloggy_pb2.DeletePostRequest, context: Context
            ) -> bloggy_pb2.DeletePostResponse:
                return await super().DeletePost(request, context)

            @requires(~has_membership("banned"), guard=cached)
            async def GetPost(  # noqa: N802
                self, request: bloggy_pb2.GetPostRequest, context: Context
            ) -> bloggy_pb2.GetPostResponse:
                return await super().GetPost(request, context)

            @requires(not_banned, guard=cached)
            async def ListPosts(  # noqa: N802
                self, request: bloggy_pb2.ListPostsRequest, context: Context
            ) -> bloggy_pb2.ListPostsResponse:
                return await super().ListPosts(request, context)

            # True | undecided is decided: anyone may create a "public" post.
            @requires(has_membership("writers") | public, guard=cached)
            async def CreatePost(  # noqa: N802
                self, request: bloggy_pb2.CreatePostRequest, context: Context
            ) -> bloggy_pb2.CreatePostResponse:
                return await super().CreatePost(request, context)

        async with serving(Protected()) as channel:
            blog = stub(channel)

            async def delete(post_id: str, token: str) -> grpc.StatusCode:
                request = bloggy_pb2.DeletePostRequest(post_id=post_id)
                return (await status_of(blog.DeletePost(request, metadata=bearer(token))))[0]

            assert await delete("1", ada_token) == grpc.StatusCode.OK
            assert await delete("3", troll_token) == PERMISSION_DENIED
            assert await delete("3", ada_token) == grpc.StatusCode.OK
            for _ in range(2):  # refused by Watchword, then from the cache
                assert await delete("1\x00", ada_token) == PERMISSION_DENIED

            async def read(metadata: CallMetadata | None) -> grpc.StatusCode:
                return (await status_of(blog.GetPost(get(), metadata=metadata)))[0]

            assert await read(None) == UNAUTHENTICATED
            assert await read(bearer("forged")) == UNAUTHENTICATED
            assert await read(bearer(ada_token)) == grpc.StatusCode.OK
            assert await read(bearer(troll_token)) == PERMISSION_DENIED

            listing = bloggy_pb2.ListPostsRequest()
            assert (await status_of(blog.ListPosts(listing)))[0] == UNAUTHENTICATED
            assert (await blog.ListPosts(listing, metadata=bearer(ada_token))).posts
            code, _ = await status_of(blog.ListPosts(listing, metadata=bearer(troll_token)))
            assert code == PERMISSION_DENIED

            mine = bloggy_pb2.CreatePostRequest(title="mine")
            public_post = bloggy_pb2.CreatePostRequest(title="public")
            assert (await blog.CreatePost(public_post)).post.title == "public"
            assert (await status_of(blog.CreatePost(mine)))[0] == UNAUTHENTICATED
            code, _ = await status_of(blog.CreatePost(mine, metadata=bearer(ada_token)))
            assert code == PERMISSION_DENIED


async def test_a_condition_must_give_a_bool_or_a_condition(
    watchword: Running, guard: Guard, caplog: pytest.LogCaptureFixture
) -> None:
    root, root_token = await register(watchword, "root@example.com")
    _, ada_token = await register(watchword, "ada@example.com")
    await join(watchword, "admins", root)
    served: list[str] = []

    async def later(ctx: RequireContext) -> Condition:
        return has_membership("admins")

    class Protected(Blog):
        # Emmett's style: a function that gives a condition; it is checked, not "truthy".
        @requires(lambda ctx: has_membership("admins"), guard=guard)
        async def DeletePost(  # noqa: N802
            self, request: bloggy_pb2.DeletePostRequest, context: Context
        ) -> bloggy_pb2.DeletePostResponse:
            served.append("DeletePost")
            return await super().DeletePost(request, context)

        @requires(later, guard=guard)
        async def CreatePost(  # noqa: N802
            self, request: bloggy_pb2.CreatePostRequest, context: Context
        ) -> bloggy_pb2.CreatePostResponse:
            served.append("CreatePost")
            return await super().CreatePost(request, context)

        @requires(cast(Any, lambda ctx: "yes"), guard=guard)  # a bug: never a pass
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            served.append("GetPost")
            return await super().GetPost(request, context)

    async with serving(Protected()) as channel:
        blog = stub(channel)
        calls: list[tuple[Any, Any]] = [
            (blog.DeletePost, bloggy_pb2.DeletePostRequest(post_id="1")),
            (blog.CreatePost, bloggy_pb2.CreatePostRequest(title="x")),
        ]
        for call, request in calls:
            assert (await status_of(call(request)))[0] == UNAUTHENTICATED
            code, _ = await status_of(call(request, metadata=bearer(ada_token)))
            assert code == PERMISSION_DENIED
            await call(request, metadata=bearer(root_token))
        with caplog.at_level(logging.ERROR, logger="watchword.requires"):
            code, message = await status_of(blog.GetPost(get(), metadata=bearer(root_token)))
        assert (code, message) == (grpc.StatusCode.UNKNOWN, "the authorization check failed")
        assert "must return a bool or a Condition" in caplog.text
    assert served == ["DeletePost", "CreatePost"]

    with pytest.raises(TypeError, match="not a bool"):
        bool(is_logged)
    with pytest.raises(TypeError, match="not a bool"):
        operator.not_(has_membership("admins"))


async def test_a_nested_protected_call_is_checked_on_its_own_request(
    watchword: Running, client: CountingClient
) -> None:
    guard = Guard(client)
    ada, token = await register(watchword, "ada@example.com")
    await join(watchword, "editors", ada)
    for name, record in (("delete", "1"), ("delete", "2"), ("read", "1"), ("read", "2")):
        await watchword.admin.AddPermission(
            admin.AddPermissionRequest(
                group="editors", name=name, table_name="Post", record_id=record
            )
        )
    related = {"1": "1", "2": "7"}  # deleting post 2 reads post 7, which ada may not read
    read: list[str] = []

    def post_id(request: Any) -> str:
        return str(request.post_id)

    class Protected(Blog):
        @requires(is_logged & has_permission("read", "Post", record=post_id), guard=guard)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            read.append(request.post_id)
            return await super().GetPost(request, context)

        @requires(is_logged & has_permission("delete", "Post", record=post_id), guard=guard)
        async def DeletePost(  # noqa: N802
            self, request: bloggy_pb2.DeletePostRequest, context: Context
        ) -> bloggy_pb2.DeletePostResponse:
            nested = bloggy_pb2.GetPostRequest(post_id=related[request.post_id])
            await self.GetPost(nested, context)
            return await super().DeletePost(request, context)

    async with serving(Protected()) as channel:
        blog = stub(channel)
        user = bearer(token)
        await blog.DeletePost(bloggy_pb2.DeletePostRequest(post_id="1"), metadata=user)
        assert read == ["1"]
        assert client.calls == ["introspect"]  # the user is shared with the nested call
        delete = blog.DeletePost(bloggy_pb2.DeletePostRequest(post_id="2"), metadata=user)
        assert (await status_of(delete))[0] == PERMISSION_DENIED
        assert read == ["1"]


# --- the interceptor ------------------------------------------------------------------


def _unary_stream(behavior: Any) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_stream_rpc_method_handler(
        behavior,
        request_deserializer=bloggy_pb2.ListPostsRequest.FromString,
        response_serializer=bloggy_pb2.Post.SerializeToString,
    )


def _stream(channel: grpc.aio.Channel, name: str) -> Any:
    return channel.unary_stream(
        f"/test.v1.FeedService/{name}",
        request_serializer=bloggy_pb2.ListPostsRequest.SerializeToString,
        response_deserializer=bloggy_pb2.Post.FromString,
    )


async def _titles(call: Any) -> list[str]:
    return [post.title async for post in call]


def _feed_handlers() -> grpc.GenericRpcHandler:
    """A second service with streaming RPCs of each style grpc.aio allows."""

    async def follow(
        request: bloggy_pb2.ListPostsRequest, context: Context
    ) -> AsyncIterator[bloggy_pb2.Post]:
        for title in ("a", "b"):
            yield bloggy_pb2.Post(title=title)

    async def follow_writing(request: bloggy_pb2.ListPostsRequest, context: Context) -> None:
        for title in ("a", "b"):
            await context.write(bloggy_pb2.Post(title=title))

    async def upload(requests: AsyncIterator[bloggy_pb2.Post], context: Context) -> bloggy_pb2.Post:
        titles = [post.title async for post in requests]
        return bloggy_pb2.Post(title="+".join(titles))

    return grpc.method_handlers_generic_handler(
        "test.v1.FeedService",
        {
            "Follow": _unary_stream(follow),
            "FollowWriting": _unary_stream(follow_writing),
            "Upload": grpc.stream_unary_rpc_method_handler(
                upload,
                request_deserializer=bloggy_pb2.Post.FromString,
                response_serializer=bloggy_pb2.Post.SerializeToString,
            ),
        },
    )


async def test_interceptor_with_exempt_methods(watchword: Running, guard: Guard) -> None:
    interceptor = RequireInterceptor(
        is_logged,
        guard=guard,
        exempt=["ListPosts", "/bloggy.v1.BloggyService/GetPost"],
        services=[SERVICE],
    )
    _, token = await register(watchword, "ada@example.com")
    async with serving(Blog(), interceptors=[interceptor], handlers=[_feed_handlers()]) as channel:
        blog = stub(channel)
        assert (await blog.ListPosts(bloggy_pb2.ListPostsRequest())).posts
        assert (await blog.GetPost(get())).post.title == "secret"
        create = bloggy_pb2.CreatePostRequest(title="x")
        delete = bloggy_pb2.DeletePostRequest(post_id="1")
        assert (await status_of(blog.CreatePost(create)))[0] == UNAUTHENTICATED
        assert (await status_of(blog.DeletePost(delete)))[0] == UNAUTHENTICATED
        assert (await blog.CreatePost(create, metadata=bearer(token))).post.title == "x"
        await blog.DeletePost(delete, metadata=bearer(token))
        # A service not named in services= is left alone.
        follow = channel.unary_stream(
            "/test.v1.FeedService/Follow",
            request_serializer=bloggy_pb2.ListPostsRequest.SerializeToString,
            response_deserializer=bloggy_pb2.Post.FromString,
        )
        assert [post.title async for post in follow(bloggy_pb2.ListPostsRequest())] == ["a", "b"]


async def test_interceptor_guards_streaming_rpcs(watchword: Running, guard: Guard) -> None:
    _, token = await register(watchword, "ada@example.com")

    async def posts(*titles: str) -> AsyncIterator[bloggy_pb2.Post]:
        for title in titles:
            yield bloggy_pb2.Post(title=title)

    interceptor = RequireInterceptor(is_logged, guard=guard)
    async with serving(interceptors=[interceptor], handlers=[_feed_handlers()]) as channel:
        upload = channel.stream_unary(
            "/test.v1.FeedService/Upload",
            request_serializer=bloggy_pb2.Post.SerializeToString,
            response_deserializer=bloggy_pb2.Post.FromString,
        )
        for name in ("Follow", "FollowWriting"):
            call = _stream(channel, name)(bloggy_pb2.ListPostsRequest())
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _titles(call)
            assert caught.value.code() == UNAUTHENTICATED
            call = _stream(channel, name)(bloggy_pb2.ListPostsRequest(), metadata=bearer(token))
            assert await _titles(call) == ["a", "b"]
        assert (await status_of(upload(posts("x"))))[0] == UNAUTHENTICATED
        assert (await upload(posts("x", "y"), metadata=bearer(token))).title == "x+y"

    # otherwise's response is a refused stream's only message.
    teaser = RequireInterceptor(
        is_logged, lambda ctx: bloggy_pb2.Post(title="log in for more"), guard=guard
    )
    async with serving(interceptors=[teaser], handlers=[_feed_handlers()]) as channel:
        for name in ("Follow", "FollowWriting"):
            call = _stream(channel, name)(bloggy_pb2.ListPostsRequest())
            assert await _titles(call) == ["log in for more"]


async def test_requires_on_a_server_streaming_method(watchword: Running, guard: Guard) -> None:
    @requires(is_logged, guard=guard)
    async def follow(
        request: bloggy_pb2.ListPostsRequest, context: Context
    ) -> AsyncIterator[bloggy_pb2.Post]:
        user = await current_context().user()
        assert user is not None
        for title in (user.email, "b"):
            yield bloggy_pb2.Post(title=title)

    @requires(is_logged, lambda ctx: bloggy_pb2.Post(title="log in for more"), guard=guard)
    async def teaser(
        request: bloggy_pb2.ListPostsRequest, context: Context
    ) -> AsyncIterator[bloggy_pb2.Post]:
        yield bloggy_pb2.Post(title="members only")

    handlers = grpc.method_handlers_generic_handler(
        "test.v1.FeedService", {"Follow": _unary_stream(follow), "Teaser": _unary_stream(teaser)}
    )
    _, token = await register(watchword, "ada@example.com")
    async with serving(handlers=[handlers]) as channel:
        follow_call = _stream(channel, "Follow")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _titles(follow_call(bloggy_pb2.ListPostsRequest()))
        assert caught.value.code() == UNAUTHENTICATED
        call = follow_call(bloggy_pb2.ListPostsRequest(), metadata=bearer(token))
        assert await _titles(call) == ["ada@example.com", "b"]
        teaser_call = _stream(channel, "Teaser")
        assert await _titles(teaser_call(bloggy_pb2.ListPostsRequest())) == ["log in for more"]
        call = teaser_call(bloggy_pb2.ListPostsRequest(), metadata=bearer(token))
        assert await _titles(call) == ["members only"]


async def test_decorated_methods_share_the_interceptors_context(
    watchword: Running, client: CountingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No default guard: the decorator takes the interceptor's.
    monkeypatch.setattr("watchword._guard._default", None)
    ada, token = await register(watchword, "ada@example.com")
    await join(watchword, "writers", ada)
    authors: list[str] = []

    class Protected(Blog):
        @requires(is_logged & has_membership("writers"))
        async def CreatePost(  # noqa: N802
            self, request: bloggy_pb2.CreatePostRequest, context: Context
        ) -> bloggy_pb2.CreatePostResponse:
            user = await current_context().user()
            assert user is not None
            authors.append(user.id)
            return await super().CreatePost(request, context)

    interceptor = RequireInterceptor(is_logged, guard=Guard(client), services=[SERVICE])
    async with serving(Protected(), interceptors=[interceptor]) as channel:
        create = bloggy_pb2.CreatePostRequest(title="x")
        await stub(channel).CreatePost(create, metadata=bearer(token))
    assert authors == [ada]
    assert client.calls == ["introspect", "membership writers"]
    with pytest.raises(LookupError):
        current_context()


def test_requires_protects_only_async_methods() -> None:
    def plain(request: object, context: object) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        requires(is_logged)(plain)
    with pytest.raises(TypeError, match="collections"):
        RequireInterceptor(is_logged, exempt="ListPosts")


async def test_the_interceptor_refuses_blocking_handlers(watchword: Running, guard: Guard) -> None:
    ran: list[str] = []

    def blocking(request: bloggy_pb2.ListPostsRequest, context: Any) -> bloggy_pb2.Post:
        context.abort(grpc.StatusCode.NOT_FOUND, "no such feed")  # a no-op on the event loop
        ran.append("after abort")
        return bloggy_pb2.Post(title="leaked")

    def blocking_stream(request: bloggy_pb2.ListPostsRequest, context: Any) -> Any:
        ran.append("stream")
        yield bloggy_pb2.Post(title="leaked")

    handlers = grpc.method_handlers_generic_handler(
        "test.v1.FeedService",
        {
            "Get": grpc.unary_unary_rpc_method_handler(
                blocking,
                request_deserializer=bloggy_pb2.ListPostsRequest.FromString,
                response_serializer=bloggy_pb2.Post.SerializeToString,
            ),
            "Follow": _unary_stream(blocking_stream),
        },
    )
    interceptor = RequireInterceptor(is_logged, guard=guard)

    # Refused when the interceptor meets the handler, before any check or call.
    for name in ("Get", "Follow"):
        handler = handlers.service(cast(grpc.HandlerCallDetails, _details(name)))

        async def found(details: grpc.HandlerCallDetails, handler: Any = handler) -> Any:
            return handler

        with pytest.raises(TypeError, match="async handlers"):
            await interceptor.intercept_service(found, _details(name))

    _, token = await register(watchword, "ada@example.com")
    async with serving(interceptors=[interceptor], handlers=[handlers]) as channel:
        get = channel.unary_unary(
            "/test.v1.FeedService/Get",
            request_serializer=bloggy_pb2.ListPostsRequest.SerializeToString,
            response_deserializer=bloggy_pb2.Post.FromString,
        )
        code, _ = await status_of(get(bloggy_pb2.ListPostsRequest(), metadata=bearer(token)))
        assert code not in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND)
        follow = _stream(channel, "Follow")(bloggy_pb2.ListPostsRequest(), metadata=bearer(token))
        with pytest.raises(grpc.aio.AioRpcError):
            await _titles(follow)
    assert ran == []


def _details(name: str) -> Any:
    return SimpleNamespace(method=f"/test.v1.FeedService/{name}", invocation_metadata=())


def test_exempt_by_bare_name_needs_services() -> None:
    with pytest.warns(UserWarning, match="open on every service"):
        RequireInterceptor(is_logged, exempt=["ListPosts"])
    # No warning (they are errors here) when the exemption cannot reach other services.
    RequireInterceptor(is_logged, exempt=["/bloggy.v1.BloggyService/ListPosts"])
    RequireInterceptor(is_logged, exempt=["ListPosts"], services=[SERVICE])


# --- the cache ------------------------------------------------------------------------


def _admins_only(guard: Guard) -> Blog:
    class Protected(Blog):
        @requires(is_logged & has_membership("admins"), guard=guard)
        async def GetPost(  # noqa: N802
            self, request: bloggy_pb2.GetPostRequest, context: Context
        ) -> bloggy_pb2.GetPostResponse:
            return await super().GetPost(request, context)

    return Protected()


async def test_cached_answers_outlive_a_block_for_at_most_the_ttl(
    watchword: Running, client: CountingClient
) -> None:
    clock = Clock()
    guard = Guard(client, cache_ttl=30, clock=clock)
    root, token = await register(watchword, "root@example.com")
    await join(watchword, "admins", root)
    async with serving(_admins_only(guard)) as channel:
        blog = stub(channel)
        await blog.GetPost(get(), metadata=bearer(token))
        await blog.GetPost(get(), metadata=bearer(token))
        assert client.calls == ["introspect", "membership admins"]  # the second call asked no one

        await watchword.admin.BlockUser(admin.BlockUserRequest(user_id=root))
        with pytest.raises(Unauthenticated):
            await client.introspect(session_token=token)  # Watchword knows at once...
        client.calls.clear()
        clock.now += 29.9
        await blog.GetPost(get(), metadata=bearer(token))  # ...the cache, within its TTL
        assert client.calls == []
        clock.now += 0.1
        code, _ = await status_of(blog.GetPost(get(), metadata=bearer(token)))
        assert code == UNAUTHENTICATED
        assert client.calls == ["introspect"]

        # "Not logged in" is remembered too.
        client.calls.clear()
        for _ in range(2):
            code, _ = await status_of(blog.GetPost(get(), metadata=bearer("forged")))
            assert code == UNAUTHENTICATED
        assert client.calls == ["introspect"]
        guard.clear_cache()
        await status_of(blog.GetPost(get(), metadata=bearer("forged")))
        assert client.calls == ["introspect", "introspect"]


async def test_without_the_cache_a_block_takes_effect_at_once(
    watchword: Running, guard: Guard, client: CountingClient
) -> None:
    root, token = await register(watchword, "root@example.com")
    await join(watchword, "admins", root)
    async with serving(_admins_only(guard)) as channel:
        blog = stub(channel)
        await blog.GetPost(get(), metadata=bearer(token))
        await blog.GetPost(get(), metadata=bearer(token))
        assert client.calls == ["introspect", "membership admins"] * 2
        await watchword.admin.BlockUser(admin.BlockUserRequest(user_id=root))
        code, _ = await status_of(blog.GetPost(get(), metadata=bearer(token)))
        assert code == UNAUTHENTICATED


# --- Watchword unavailable ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_watchword_down_is_unavailable(watchword: Running) -> None:
    _, token = await register(watchword, "ada@example.com")
    answered: list[str] = []

    def otherwise(ctx: RequireContext) -> bloggy_pb2.GetPostResponse:
        answered.append(ctx.method)
        return bloggy_pb2.GetPostResponse()

    down = AsyncClient(f"127.0.0.1:{_closed_port()}", service_key=watchword.access_key)
    wrong_key = AsyncClient(watchword.address, service_key="not-a-key")
    async with down, wrong_key:
        for client in (down, wrong_key):

            class Protected(Blog):
                @requires(has_membership("admins"), otherwise, guard=Guard(client))
                async def GetPost(  # noqa: N802
                    self, request: bloggy_pb2.GetPostRequest, context: Context
                ) -> bloggy_pb2.GetPostResponse:
                    return await super().GetPost(request, context)

            async with serving(Protected()) as channel:
                code, message = await status_of(
                    stub(channel).GetPost(get(), metadata=bearer(token))
                )
                assert code == grpc.StatusCode.UNAVAILABLE
                assert message == "the authorization service is unavailable; try again later"
    assert answered == []  # otherwise is for refusals, not outages


def test_public_surface() -> None:
    module = importlib.import_module("watchword.requires")
    assert sorted(module.__all__) == [
        "Condition",
        "ConditionLike",
        "Denial",
        "Guard",
        "Otherwise",
        "Record",
        "RequireContext",
        "RequireInterceptor",
        "Undecidable",
        "configure",
        "current_context",
        "has_membership",
        "has_permission",
        "is_logged",
        "requires",
    ]
    assert all(hasattr(module, name) for name in module.__all__)


# --- several answers, one BatchCheck --------------------------------------------------


def _post_id(request: Any) -> str:
    return str(request.post_id)


async def test_a_compound_condition_asks_one_batch_check(watchword: Running) -> None:
    ada, ada_token = await register(watchword, "ada@example.com")
    troll, troll_token = await register(watchword, "troll@example.com")
    await join(watchword, "editors", ada)
    await watchword.admin.AddMembership(admin.AddMembershipRequest(group="editors", user_id=troll))
    await join(watchword, "banned", troll)
    await watchword.admin.AddPermission(
        admin.AddPermissionRequest(group="editors", name="edit", table_name="Post", record_id="1")
    )
    recorder = Recorder()
    channel = recorder.channel(watchword.address)
    async with AsyncClient("ignored", channel=channel, service_key=watchword.access_key) as client:
        guard = Guard(client)
        may_edit = has_membership("admins") | has_permission("edit", "Post", record=_post_id)

        class Protected(Blog):
            @requires(is_logged & may_edit & ~has_membership("banned"), guard=guard)
            async def GetPost(  # noqa: N802
                self, request: bloggy_pb2.GetPostRequest, context: Context
            ) -> bloggy_pb2.GetPostResponse:
                return await super().GetPost(request, context)

            # "Not locked and not banned": an undecided part must not turn into a pass.
            @requires(
                ~(has_permission("locked", "Post", record=_post_id) | has_membership("banned")),
                guard=guard,
            )
            async def DeletePost(  # noqa: N802
                self, request: bloggy_pb2.DeletePostRequest, context: Context
            ) -> bloggy_pb2.DeletePostResponse:
                return await super().DeletePost(request, context)

            @requires(has_membership("admins") | has_membership("editors"), guard=guard)
            async def CreatePost(  # noqa: N802
                self, request: bloggy_pb2.CreatePostRequest, context: Context
            ) -> bloggy_pb2.CreatePostResponse:
                return await super().CreatePost(request, context)

        async with serving(Protected()) as served:
            blog = stub(served)

            async def read(post_id: str, token: str | None) -> grpc.StatusCode:
                recorder.calls.clear()
                metadata = bearer(token) if token else None
                return (await status_of(blog.GetPost(get(post_id), metadata=metadata)))[0]

            batched = ["AuthService/Introspect", "AccessService/BatchCheck"]
            assert await read("1", ada_token) == grpc.StatusCode.OK
            assert recorder.methods == batched
            (batch,) = recorder.of("AccessService/BatchCheck")
            asked = [
                (check.WhichOneof("kind"), check.membership.group or check.permission.name)
                for check in batch.request.checks
            ]
            assert asked == [
                ("membership", "admins"),
                ("permission", "edit"),
                ("membership", "banned"),
            ]
            assert await read("2", ada_token) == PERMISSION_DENIED  # no grant on post 2
            assert recorder.methods == batched
            assert await read("1", troll_token) == PERMISSION_DENIED  # banned
            assert recorder.methods == batched
            # A record id Watchword refuses fails only its own check, which stays undecided.
            assert await read("1\x00", ada_token) == PERMISSION_DENIED
            (batch,) = recorder.of("AccessService/BatchCheck")
            refused = batch.response.results[1]
            assert refused.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            # No valid session: is_logged decides first, and nothing else is asked.
            assert await read("1", "forged") == UNAUTHENTICATED
            assert recorder.methods == ["AuthService/Introspect"]
            assert await read("1", None) == UNAUTHENTICATED
            assert recorder.methods == []

            async def delete(post_id: str, token: str) -> grpc.StatusCode:
                recorder.calls.clear()
                request = bloggy_pb2.DeletePostRequest(post_id=post_id)
                return (await status_of(blog.DeletePost(request, metadata=bearer(token))))[0]

            assert await delete("1", ada_token) == grpc.StatusCode.OK
            assert recorder.methods == ["AccessService/BatchCheck"]
            assert await delete("1", troll_token) == PERMISSION_DENIED
            assert await delete("1\x00", ada_token) == PERMISSION_DENIED  # ~undecided: refused
            assert recorder.methods == ["AccessService/BatchCheck"]

            # An invalid session found by the batch itself: not logged in, as one by one.
            recorder.calls.clear()
            create = bloggy_pb2.CreatePostRequest(title="x")
            code, message = await status_of(blog.CreatePost(create, metadata=bearer("forged")))
            assert (code, message) == (
                UNAUTHENTICATED,
                "the session is invalid or expired: log in again",
            )
            assert recorder.methods == ["AccessService/BatchCheck"]
            assert (await blog.CreatePost(create, metadata=bearer(ada_token))).post.title == "x"
    await channel.close()


async def test_the_cache_keeps_batched_answers_until_the_clients_own_write(
    watchword: Running,
) -> None:
    ada, token = await register(watchword, "ada@example.com")
    await join(watchword, "editors", ada)
    recorder = Recorder()
    channel = recorder.channel(watchword.address)
    # One client for the guard and for the service's own admin writes.
    async with AsyncClient("ignored", channel=channel, service_key=watchword.admin_key) as client:
        guard = Guard(client, cache_ttl=60, clock=Clock())

        class Protected(Blog):
            @requires(has_membership("admins") | has_membership("editors"), guard=guard)
            async def GetPost(  # noqa: N802
                self, request: bloggy_pb2.GetPostRequest, context: Context
            ) -> bloggy_pb2.GetPostResponse:
                return await super().GetPost(request, context)

        async with serving(Protected()) as served:
            blog = stub(served)

            async def read() -> grpc.StatusCode:
                recorder.calls.clear()
                return (await status_of(blog.GetPost(get(), metadata=bearer(token))))[0]

            assert await read() == grpc.StatusCode.OK
            assert recorder.methods == ["AccessService/BatchCheck"]
            assert await read() == grpc.StatusCode.OK
            assert recorder.methods == []  # both answers remembered

            await client.remove_membership(group="editors", user_id=ada)
            assert await read() == PERMISSION_DENIED  # the client's own write counts at once
            assert recorder.methods == ["AccessService/BatchCheck"]
            (batch,) = recorder.of("AccessService/BatchCheck")
            sent = {check.membership.min_revision for check in batch.request.checks}
            assert sent == {client.last_revision}
            assert await read() == PERMISSION_DENIED
            assert recorder.methods == []

            # Someone else's write is seen when the TTL ends, as before.
            await watchword.admin.AddMembership(
                admin.AddMembershipRequest(group="editors", user_id=ada)
            )
            assert await read() == PERMISSION_DENIED
            assert recorder.methods == []
    await channel.close()


async def test_without_batch_check_the_answers_come_one_by_one(start_server: StartServer) -> None:
    running = await start_server(disabled_rpcs=["BatchCheck"])
    ada, token = await register(running, "ada@example.com")
    await join(running, "editors", ada)
    recorder = Recorder()
    channel = recorder.channel(running.address)
    async with AsyncClient("ignored", channel=channel, service_key=running.access_key) as client:
        guard = Guard(client)

        class Protected(Blog):
            @requires(has_membership("admins") | has_membership("editors"), guard=guard)
            async def GetPost(  # noqa: N802
                self, request: bloggy_pb2.GetPostRequest, context: Context
            ) -> bloggy_pb2.GetPostResponse:
                return await super().GetPost(request, context)

        async with serving(Protected()) as served:
            blog = stub(served)
            await blog.GetPost(get(), metadata=bearer(token))
            one_by_one = ["AccessService/HasMembership"] * 2
            assert recorder.methods == ["AccessService/BatchCheck", *one_by_one]
            recorder.calls.clear()
            await blog.GetPost(get(), metadata=bearer(token))
            assert recorder.methods == one_by_one  # not tried again
    await channel.close()


class _Broken:
    """A stand-in Watchword whose BatchCheck answers wrongly: the guard must fail closed."""

    def __init__(self) -> None:
        self.results: list[access_service_pb2.CheckResult] = []

    async def introspect(
        self, request: auth.IntrospectRequest, context: Any
    ) -> auth.IntrospectResponse:
        return auth.IntrospectResponse(user=resources_pb2.User(id="u1"))

    async def batch_check(
        self, request: access_service_pb2.BatchCheckRequest, context: Any
    ) -> access_service_pb2.BatchCheckResponse:
        return access_service_pb2.BatchCheckResponse(results=self.results)

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        return [
            grpc.method_handlers_generic_handler(
                "watchword.auth.v1.AuthService",
                {
                    "Introspect": grpc.unary_unary_rpc_method_handler(
                        self.introspect,
                        request_deserializer=auth.IntrospectRequest.FromString,
                        response_serializer=auth.IntrospectResponse.SerializeToString,
                    )
                },
            ),
            grpc.method_handlers_generic_handler(
                "watchword.auth.v1.AccessService",
                {
                    "BatchCheck": grpc.unary_unary_rpc_method_handler(
                        self.batch_check,
                        request_deserializer=access_service_pb2.BatchCheckRequest.FromString,
                        response_serializer=access_service_pb2.BatchCheckResponse.SerializeToString,
                    )
                },
            ),
        ]


async def test_a_batch_answered_wrongly_admits_no_one() -> None:
    broken = _Broken()
    refused: list[str] = []

    def otherwise(ctx: RequireContext) -> None:
        refused.append(ctx.method)

    async with serving(handlers=broken.handlers()) as watchword_channel:
        client = AsyncClient("ignored", channel=watchword_channel)
        guard = Guard(client)

        class Protected(Blog):
            @requires(
                is_logged & (has_membership("a") | has_membership("b")), otherwise, guard=guard
            )
            async def GetPost(  # noqa: N802
                self, request: bloggy_pb2.GetPostRequest, context: Context
            ) -> bloggy_pb2.GetPostResponse:
                return await super().GetPost(request, context)

        async with serving(Protected()) as served:
            blog = stub(served)
            yes = access_service_pb2.CheckResult(allowed=True)
            cases = [
                [yes],  # one result for two checks: none can be trusted
                [yes, yes, yes],
                # "allowed" with an error (even one with code OK) is no answer.
                [access_service_pb2.CheckResult(allowed=True, error=status_pb2.Status()), yes],
                [
                    access_service_pb2.CheckResult(
                        allowed=True, error=status_pb2.Status(code=13, message="internal")
                    ),
                    yes,
                ],
            ]
            for results in cases:
                broken.results = results
                code, message = await status_of(blog.GetPost(get(), metadata=bearer("t")))
                assert code == grpc.StatusCode.UNAVAILABLE, results
                assert message == "the authorization service is unavailable; try again later"
            broken.results = [access_service_pb2.CheckResult(allowed=False), yes]
            assert (await blog.GetPost(get(), metadata=bearer("t"))).post.title == "secret"
    assert refused == []  # outages, not refusals
