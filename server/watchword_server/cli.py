"""The ``watchword`` command: ``serve`` and ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from watchword_server import __version__
from watchword_server.app import SchemaNotReady, WatchwordServer
from watchword_server.config import Settings, load_settings
from watchword_server.storage.db import create_engine
from watchword_server.storage.schema import upgrade

__all__ = ["main"]

_log = logging.getLogger("watchword")


async def _serve(settings: Settings) -> None:
    server = WatchwordServer(settings)
    try:
        await server.start()
    except BaseException:
        await server.stop(0)
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    _log.info("shutting down: finishing calls in flight")
    await server.stop()


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchword",
        description="Watchword authentication and authorization service. Settings come "
        "from WATCHWORD_* environment variables and the TOML file named by WATCHWORD_CONFIG.",
    )
    parser.add_argument("--version", action="version", version=f"watchword {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="serve gRPC on the `listen` address")
    commands.add_parser("migrate", help="bring the database schema up to date")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
    except ValidationError as error:
        print(f"watchword: invalid settings:\n{error}", file=sys.stderr)
        return 2
    try:
        if arguments.command == "serve":
            asyncio.run(_serve(settings))
        elif arguments.command == "migrate":
            asyncio.run(_migrate(settings))
            print("watchword: the database schema is up to date")
    except SchemaNotReady as error:
        print(f"watchword: {error}", file=sys.stderr)
        return 1
    return 0
