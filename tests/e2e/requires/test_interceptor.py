"""watchword.requires on a real grpc.aio service, checked by a live Watchword.

RequireInterceptor: exempt methods, streaming RPCs, the shared context, blocking handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import grpc
import pytest

from examples.bloggy.bloggy.v1 import bloggy_pb2
from tests.support.flows import register
from tests.support.requires_demo import (
    SERVICE,
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
    Guard,
    RequireInterceptor,
    current_context,
    has_membership,
    is_logged,
    requires,
)

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
