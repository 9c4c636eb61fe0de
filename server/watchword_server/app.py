"""Runs one server process: the schema check, the gRPC server, background work, shutdown."""

from __future__ import annotations

import logging

from watchword_server.config import Settings
from watchword_server.domain.access.service_keys import ServiceKeys
from watchword_server.domain.common.clock import Clock, SystemClock
from watchword_server.runtime.database_watch import DatabaseWatch
from watchword_server.runtime.event_stream import EventStream
from watchword_server.runtime.mail_sender import MailSender
from watchword_server.runtime.mail_transports import MailTransport
from watchword_server.storage.db import Database, Engine, create_engine
from watchword_server.storage.schema import MigrationRefused, SchemaState, schema_state, upgrade
from watchword_server.supervisor import AddressInUse, free_address
from watchword_server.transport.server import RPC_NAMES, GrpcServer
from watchword_server.transport.tls import ServerCredentials, TlsError, server_credentials
from watchword_server.wiring import Domain, build_domain

__all__ = ["SchemaNotReady", "StartupError", "WatchwordServer", "check_schema", "tls_credentials"]

_log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


class SchemaNotReady(StartupError):
    """The database schema does not match this server; the message says what to run."""


async def check_schema(engine: Engine, settings: Settings) -> None:
    """Make sure the schema is this server's: the embedded default brings its own up to
    date; otherwise raise SchemaNotReady, saying what to run."""
    state = await schema_state(engine)
    if state is SchemaState.BEHIND and settings.migrates_itself:
        _log.info("bringing the embedded database schema up to date")
        try:
            await upgrade(engine)
        except MigrationRefused as error:
            raise StartupError(str(error)) from None
    elif state is SchemaState.BEHIND:
        raise SchemaNotReady(
            "the database schema is behind this server: run `watchword migrate` first"
        )
    elif state is SchemaState.UNKNOWN:
        raise SchemaNotReady("the database schema is newer than this server: upgrade the server")


def tls_credentials(settings: Settings) -> ServerCredentials | None:
    """The TLS credentials the settings name (None: plaintext), or a StartupError saying
    which file cannot be used and why."""
    try:
        return server_credentials(settings)
    except TlsError as error:
        raise StartupError(str(error)) from None


class WatchwordServer:
    """One server process: call ``start()``, then ``stop()`` (or ``wait_for_termination()``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        mail_transport: MailTransport | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.settings = settings
        self._reuse_port = reuse_port
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size
        )
        self._mail_transport = mail_transport
        self._server: GrpcServer | None = None
        self._database_watch: DatabaseWatch | None = None
        self.mail_sender: MailSender | None = None
        self.event_stream: EventStream | None = None
        self.service_keys: ServiceKeys | None = None
        self.domain: Domain | None = None
        self.port = 0

    async def start(self) -> int:
        """Check the schema, bind ``settings.listen`` and start serving; returns the port."""
        unknown = sorted(set(self.settings.disabled_rpcs) - set(RPC_NAMES))
        if unknown:
            raise StartupError(f"disabled_rpcs names no RPC of the contract: {unknown}")
        credentials = tls_credentials(self.settings)
        await check_schema(self.engine, self.settings)
        domain = build_domain(
            self.settings, Database(self.engine), self.clock, mail_transport=self._mail_transport
        )
        settings = self.settings
        server = GrpcServer(settings, domain, reuse_port=self._reuse_port)
        self.port = server.bind(settings.listen, credentials)
        if self.port == 0:
            try:  # say why: taken, or not an address of this machine
                free_address(settings.listen)
            except AddressInUse as error:
                raise StartupError(str(error)) from None
            if credentials is not None:  # the files passed our checks but not gRPC's
                raise StartupError(
                    f"cannot listen on {settings.listen} with the certificate and key of "
                    "tls_cert_file and tls_key_file"
                )
            raise StartupError(f"cannot listen on {settings.listen}")
        self.domain = domain
        if domain.prepared is not None:
            await domain.prepared.warm()
        await domain.change_listener.start()
        await domain.touches.start()
        await domain.retention.start()
        # Watchers must find the stream running from the first call on.
        self.event_stream = domain.event_stream
        await domain.event_stream.start()
        await server.start()
        self._server = server
        await server.set_health(serving=True)
        self._database_watch = DatabaseWatch(Database(self.engine), self._database_changed)
        await self._database_watch.start()
        self.mail_sender = domain.mail_sender
        await domain.mail_sender.start()
        self.service_keys = domain.service_keys
        _log.info(
            "watchword is serving on %s (port %d, %s)",
            settings.listen,
            self.port,
            _transport_security(settings),
        )
        return self.port

    async def _database_changed(self, reachable: bool) -> None:
        # Ignored once shutting down: the health servicer then says NOT_SERVING for good.
        if self._server is not None:
            await self._server.set_health(serving=reachable)

    async def stop(self, grace: float | None = None) -> None:
        """Say NOT_SERVING, let running calls finish within ``grace`` seconds, then close."""
        if self._database_watch is not None:
            await self._database_watch.stop()
            self._database_watch = None
        if self._server is not None:
            await self._server.enter_graceful_shutdown()
        if self.event_stream is not None:
            # Ends open WatchEvents streams, so they finish cleanly within the grace period.
            await self.event_stream.stop()
            self.event_stream = None
        if self._server is not None:
            await self._server.stop(self.settings.grace_period if grace is None else grace)
            self._server = None
        if self.domain is not None:
            # Work that answered calls already (reset keys) is finished before the mail
            # sender and the database go.
            await self.domain.background.drain(timeout=5.0)
        if self.mail_sender is not None:
            await self.mail_sender.stop()
            self.mail_sender = None
        if self.domain is not None:
            await self.domain.retention.stop()
            await self.domain.change_listener.stop()
            await self.domain.touches.stop()
            if self.domain.prepared is not None:
                await self.domain.prepared.close()
            self.domain.hashing.close()
            self.domain = None
        await self.engine.dispose()

    async def wait_for_termination(self) -> None:
        """Block until the server stops."""
        if self._server is not None:
            await self._server.wait_for_termination()


def _transport_security(settings: Settings) -> str:
    if settings.tls_client_ca_file is not None:
        return "mutual TLS: client certificates required"
    return "TLS" if settings.tls_cert_file is not None else "plaintext"
