"""Log in to Watchword as the admin, write a post, list the posts anonymously, and show what
an anonymous delete gets before deleting as the admin.

From the repository root: ``.venv/bin/python -m examples.bloggy.call``.
"""

import argparse
import asyncio

import grpc

from examples.bloggy.bloggy.v1 import bloggy_pb2, bloggy_pb2_grpc
from watchword.client import AsyncClient


async def main(watchword_address: str, bloggy_address: str, password: str) -> None:
    async with AsyncClient(watchword_address) as watchword:
        login = await watchword.authenticate(email="root@example.com", password=password)
    as_root = (("authorization", f"Bearer {login.session_token}"),)
    async with grpc.aio.insecure_channel(bloggy_address) as channel:
        blog = bloggy_pb2_grpc.BloggyServiceStub(channel)
        created = await blog.CreatePost(
            bloggy_pb2.CreatePostRequest(title="Hello", body="First post"), metadata=as_root
        )
        listed = await blog.ListPosts(bloggy_pb2.ListPostsRequest())
        print("posts:", [post.title for post in listed.posts])
        delete = bloggy_pb2.DeletePostRequest(post_id=created.post.id)
        try:
            await blog.DeletePost(delete)
        except grpc.aio.AioRpcError as error:
            print("anonymous delete:", error.code().name)
        await blog.DeletePost(delete, metadata=as_root)
        print("deleted", created.post.id)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchword", default="127.0.0.1:50051", help="Watchword's address")
    parser.add_argument("--bloggy", default="127.0.0.1:50052", help="Bloggy's address")
    parser.add_argument("--password", default="correct horse battery", help="root's password")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.watchword, arguments.bloggy, arguments.password))
