"""The bloggy demo (examples/bloggy) against a live Watchword: open reads, logged-in
writes, admin-only deletes; and its README, run as written."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest

from examples.bloggy.bloggy.v1 import bloggy_pb2, bloggy_pb2_grpc
from examples.bloggy.server import ADMINS, build_server
from tests.support.flows import PASSWORD, register
from tests.support.net import free_port
from tests.support.servers import Running
from watchword import Guard
from watchword.auth.v1 import admin_service_pb2 as admin
from watchword.auth.v1 import resources_pb2
from watchword.client import AsyncClient

# A client's side of the contract: the SERIALIZABLE run skips it (see pyproject's markers).
pytestmark = pytest.mark.client_side

ROOT = Path(__file__).resolve().parents[2]
Stub: TypeAlias = "bloggy_pb2_grpc.BloggyServiceAsyncStub"  # a type only, no runtime name


def as_user(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def make_admin(running: Running, user_id: str) -> None:
    await running.admin.CreateGroup(
        admin.CreateGroupRequest(group=resources_pb2.Group(name=ADMINS))
    )
    await running.admin.AddMembership(admin.AddMembershipRequest(group=ADMINS, user_id=user_id))


@pytest.fixture
async def bloggy(watchword: Running) -> AsyncIterator[Stub]:
    """The demo service in-process on port 0, checking sessions with the live Watchword."""
    async with AsyncClient(watchword.address, service_key=watchword.access_key) as client:
        server, port = build_server(Guard(client))
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield bloggy_pb2_grpc.BloggyServiceStub(channel)
        finally:
            await server.stop(0)


async def create(bloggy: Stub, token: str, title: str = "Hello") -> bloggy_pb2.Post:
    reply = await bloggy.CreatePost(
        bloggy_pb2.CreatePostRequest(title=title, body="text"), metadata=as_user(token)
    )
    return reply.post


async def test_anyone_reads(watchword: Running, bloggy: Stub) -> None:
    _, token = await register(watchword, "ada@example.com")
    first = await create(bloggy, token, "first")
    await create(bloggy, token, "second")

    listed = await bloggy.ListPosts(bloggy_pb2.ListPostsRequest())
    assert [post.title for post in listed.posts] == ["second", "first"]
    got = await bloggy.GetPost(bloggy_pb2.GetPostRequest(post_id=first.id))
    assert got.post == first
    # An open RPC ignores a bad token rather than refusing the call.
    listed = await bloggy.ListPosts(bloggy_pb2.ListPostsRequest(), metadata=as_user("bogus"))
    assert len(listed.posts) == 2


async def test_anonymous_create_is_unauthenticated(bloggy: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bloggy.CreatePost(bloggy_pb2.CreatePostRequest(title="spam"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in str(caught.value.details())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(bloggy, "not-a-session")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert not (await bloggy.ListPosts(bloggy_pb2.ListPostsRequest())).posts


async def test_logged_in_user_creates_a_post(watchword: Running, bloggy: Stub) -> None:
    ada, token = await register(watchword, "ada@example.com")
    post = await create(bloggy, token, "Notes on the Analytical Engine")
    assert post.id
    assert post.author_id == ada
    assert post.title == "Notes on the Analytical Engine"


async def test_a_non_admin_cannot_delete(watchword: Running, bloggy: Stub) -> None:
    _, token = await register(watchword, "ada@example.com")
    post = await create(bloggy, token)
    delete = bloggy_pb2.DeletePostRequest(post_id=post.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bloggy.DeletePost(delete, metadata=as_user(token))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bloggy.DeletePost(delete)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await bloggy.GetPost(bloggy_pb2.GetPostRequest(post_id=post.id))).post == post


async def test_an_admin_deletes(watchword: Running, bloggy: Stub) -> None:
    _, author = await register(watchword, "ada@example.com")
    root, token = await register(watchword, "root@example.com")
    await make_admin(watchword, root)
    post = await create(bloggy, author)

    await bloggy.DeletePost(bloggy_pb2.DeletePostRequest(post_id=post.id), metadata=as_user(token))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bloggy.GetPost(bloggy_pb2.GetPostRequest(post_id=post.id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bloggy.DeletePost(
            bloggy_pb2.DeletePostRequest(post_id=post.id), metadata=as_user(token)
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_removed_admin_loses_delete_at_once(watchword: Running, bloggy: Stub) -> None:
    root, token = await register(watchword, "root@example.com")
    await make_admin(watchword, root)
    post = await create(bloggy, token)
    await watchword.admin.RemoveMembership(
        admin.RemoveMembershipRequest(group=ADMINS, user_id=root)
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await bloggy.DeletePost(
            bloggy_pb2.DeletePostRequest(post_id=post.id), metadata=as_user(token)
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


# --- the README, as written -----------------------------------------------------------


CALL = ROOT / "examples" / "bloggy" / "call.py"


def _readme_blocks(language: str) -> list[str]:
    text = (ROOT / "examples" / "bloggy" / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_the_readme_shows_call_py_whole_and_how_to_run_it() -> None:
    assert _readme_blocks("python") == [CALL.read_text(encoding="utf-8")]
    assert ".venv/bin/python -m examples.bloggy.call\n" in _readme_blocks("sh")


async def test_readme_runs_the_demo_as_a_program(watchword: Running) -> None:
    root, _ = await register(watchword, "root@example.com")
    await make_admin(watchword, root)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env["WATCHWORD_SERVICE_KEY"] = watchword.access_key
    # The command from the README; the Watchword under test runs in this process.
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.bloggy",
        "--watchword",
        watchword.address,
        "--listen",
        f"127.0.0.1:{port}",
        cwd=ROOT,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout=30)
        # The README's command (run from the root, as it says), pointed at the servers here.
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "examples.bloggy.call",
            "--watchword",
            watchword.address,
            "--bloggy",
            f"127.0.0.1:{port}",
            "--password",
            PASSWORD,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(client.communicate(), timeout=60)
        assert client.returncode == 0, stderr.decode()
        assert stdout.decode().splitlines() == [
            "posts: ['Hello']",
            "anonymous delete: UNAUTHENTICATED",
            "deleted 1",
        ]
    finally:
        if demo.returncode is None:
            demo.send_signal(signal.SIGTERM)
        _, log = await asyncio.wait_for(demo.communicate(), timeout=30)
    assert demo.returncode == 0, log.decode()
