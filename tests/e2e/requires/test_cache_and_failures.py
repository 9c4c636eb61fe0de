"""watchword.requires on a real grpc.aio service, checked by a live Watchword.

The guard's answer cache, Watchword being down, and the public surface.
"""

from __future__ import annotations

import importlib
import socket

import grpc
import pytest

import watchword
from examples.bloggy.bloggy.v1 import bloggy_pb2
from tests.support.clock import ManualSeconds
from tests.support.flows import register
from tests.support.requires_demo import (
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
    RequireContext,
    has_membership,
    is_logged,
    requires,
)
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.client import AsyncClient
from watchword.errors import Unauthenticated

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
    clock = ManualSeconds()
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
    module = importlib.import_module("watchword._requires")
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
    # The module is private: the package exports all of it, and watchword.requires is
    # the decorator alone.
    assert all(getattr(watchword, name) is getattr(module, name) for name in module.__all__)
    assert watchword.requires is module.requires
    assert callable(watchword.requires) and not isinstance(watchword.requires, type(module))
