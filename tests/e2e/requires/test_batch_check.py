"""watchword.requires on a real grpc.aio service, checked by a live Watchword.

Conditions that need several answers ask one BatchCheck, and fail closed on a wrong one.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import status_pb2

from examples.bloggy.bloggy.v1 import bloggy_pb2
from tests.support.clock import ManualSeconds
from tests.support.flows import register
from tests.support.recording import Recorder
from tests.support.requires_demo import (
    PERMISSION_DENIED,
    UNAUTHENTICATED,
    Blog,
    Context,
    bearer,
    get,
    join,
    serving,
    status_of,
    stub,
)
from tests.support.servers import Running, StartServer
from watchword import (
    Guard,
    RequireContext,
    has_membership,
    has_permission,
    is_logged,
    requires,
)
from watchword.auth.v1 import access_service_pb2, resources_pb2
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import auth_service_pb2 as auth
from watchword.client import AsyncClient

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
        guard = Guard(client, cache_ttl=60, clock=ManualSeconds())

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
