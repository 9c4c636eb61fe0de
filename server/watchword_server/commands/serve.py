"""``watchword serve [--listen HOST:PORT] [--workers N]``: the only command that needs the
server (gRPC, the transport), so the only one that imports it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from watchword_server.app import WatchwordServer, tls_credentials
from watchword_server.commands import CommandError
from watchword_server.config import Settings
from watchword_server.supervisor import AddressInUse, supervise

__all__ = ["run"]

_log = logging.getLogger("watchword")


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit status.

    Raises:
        CommandError: ``--workers`` on the embedded database, or the address is taken.
        StartupError: the server cannot start; the message says why.
    """
    try:
        if arguments.workers > 1:
            if settings.is_embedded:
                raise CommandError(
                    "--workers needs PostgreSQL (set database_url): the embedded SQLite "
                    "file is served by one process"
                )
            # Unusable TLS files: said once here, rather than by each worker dying at start.
            tls_credentials(settings)
            # Each worker drains, then finishes its calls, before the supervisor gives up.
            stopping_time = settings.shutdown_drain_seconds + settings.grace_period
            return supervise(
                settings.listen,
                arguments.workers,
                grace=stopping_time,
                metrics_listen=settings.metrics_listen,
            )
        asyncio.run(_serve(settings, reuse_port=arguments.reuse_port))
    except AddressInUse as error:
        raise CommandError(str(error)) from None
    return 0


async def _serve(settings: Settings, *, reuse_port: bool = False) -> None:
    server = WatchwordServer(settings, reuse_port=reuse_port)
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
    stopping.clear()
    await server.drain(cut_short=stopping)  # a second signal ends the drain at once
    _log.info("shutting down: finishing calls in flight")
    await server.stop()
