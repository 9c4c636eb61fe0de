"""watchword.requires on a real grpc.aio service, checked by a live Watchword.

Conditions: callables, combinations, records from the request, undecided checks, nesting.
"""

from __future__ import annotations

import logging
import operator
from typing import Any, cast

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
    join,
    serving,
    status_of,
    stub,
)
from tests.support.servers import Running
from watchword import (
    Condition,
    Guard,
    RequireContext,
    has_membership,
    has_permission,
    is_logged,
    requires,
)
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.client import CallMetadata

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
