"""Watchword inside an application (docs/embedding.md): our services on the application's
own ``grpc.aio`` server, its services beside ours on Watchword's, and hooks that may refuse
a registration, a login or a password change.

On the application's server::

    server = grpc.aio.server()
    add_GreeterServicer_to_server(Greeter(), server)
    async with serve_within(server, settings, hooks=Hooks(before_register=check_domain)):
        server.add_insecure_port("127.0.0.1:50051")
        await server.start()
        ...
        await server.stop(5)  # before the block ends: our domain stops with it

Beside ours on Watchword's own server::

    WatchwordServer(
        settings,
        extra_services=[lambda server: add_GreeterServicer_to_server(Greeter(), server)],
        reflected_services=["example.Greeter"],
    )
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from watchword_server.app import StartupError, WatchwordServer
from watchword_server.config import Settings
from watchword_server.domain.accounts.hooks import (
    Hook,
    Hooks,
    LoginAttempt,
    PasswordChangeAttempt,
    Refused,
    RegisterAttempt,
)
from watchword_server.domain.common.clock import Clock
from watchword_server.model.records import UserRecord, UserStatus
from watchword_server.runtime.mail_transports import MailTransport
from watchword_server.transport.server import AddServices, AioServer

__all__ = [
    "AddServices",
    "Hook",
    "Hooks",
    "LoginAttempt",
    "PasswordChangeAttempt",
    "Refused",
    "RegisterAttempt",
    "StartupError",
    "UserRecord",
    "UserStatus",
    "WatchwordServer",
    "serve_within",
]


@contextlib.asynccontextmanager
async def serve_within(
    server: AioServer,
    settings: Settings,
    *,
    hooks: Hooks | None = None,
    standard_services: bool = True,
    reflected_services: Sequence[str] = (),
    clock: Clock | None = None,
    mail_transport: MailTransport | None = None,
) -> AsyncIterator[WatchwordServer]:
    """Add Watchword's services to ``server`` and run its domain for the block.

    On entry: the schema check, our three services (with their key checks, error
    statuses, metrics and access log) and, unless ``standard_services`` is False, health
    and reflection (of ours and ``reflected_services``) are added to ``server``, which
    must not be started yet (gRPC takes no services after); then the background work
    (mail, retention, cache invalidation, event stream) starts. ``settings.listen`` and
    the TLS settings are not used: ``server``'s ports are the application's.

    On exit: the background work stops and the database closes. Stop ``server`` first:
    a call that arrives after the block finds no domain to answer it.

    Args:
        server: The application's server, not started.
        settings: Watchword's settings (database, pepper, messages, ``disabled_rpcs``...).
        hooks: The application's hooks (None: allow everything).
        standard_services: Add health and reflection; False if the application has its own
            (our health then says nothing about our services).
        reflected_services: The application's services' full names, for our reflection.
        clock: The domain's clock (None: the system's).
        mail_transport: Where mail goes (None: as the settings say).

    Yields:
        The running Watchword (``service_keys`` creates keys; ``domain`` is its services).

    Raises:
        StartupError: the schema is not ready, or ``disabled_rpcs`` names no RPC.
    """
    watchword = WatchwordServer(
        settings,
        clock=clock,
        mail_transport=mail_transport,
        hooks=hooks,
        reflected_services=reflected_services,
        attach_to=server,
        standard_services=standard_services,
    )
    try:
        await watchword.start()
        yield watchword
    finally:
        await watchword.stop()
