"""``python -m examples.bloggy``: serve BloggyService against a running Watchword."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Sequence

from examples.bloggy.server import build_server
from watchword import Guard
from watchword.client import AsyncClient

_log = logging.getLogger("bloggy")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.bloggy",
        description="A demo blog service whose RPCs are protected with Watchword.",
    )
    parser.add_argument(
        "--watchword", default="127.0.0.1:50051", help="Watchword's address (host:port)"
    )
    parser.add_argument(
        "--service-key",
        default=os.environ.get("WATCHWORD_SERVICE_KEY"),
        help="a Watchword service key of scope access (default: $WATCHWORD_SERVICE_KEY)",
    )
    parser.add_argument("--listen", default="127.0.0.1:50052", help="where to serve (host:port)")
    parser.add_argument(
        "--cache-ttl",
        type=float,
        default=None,
        help="seconds to remember Watchword's answers per session (default: ask every time)",
    )
    return parser


async def serve(watchword: str, service_key: str, listen: str, cache_ttl: float | None) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully."""
    async with AsyncClient(watchword, service_key=service_key) as client:
        server, port = build_server(Guard(client, cache_ttl=cache_ttl), listen)
        await server.start()
        _log.info(
            "bloggy serves on port %d, checking sessions with Watchword at %s", port, watchword
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        await server.stop(5)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve."""
    args = _parser().parse_args(argv)
    if not args.service_key:
        _parser().error("a service key is needed: --service-key or WATCHWORD_SERVICE_KEY")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args.watchword, args.service_key, args.listen, args.cache_ttl))


if __name__ == "__main__":
    main()
