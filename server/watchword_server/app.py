"""Runs one server process: the schema check, the gRPC server, background work, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence

from watchword_server.config import Settings
from watchword_server.domain.access.service_keys import ServiceKeys
from watchword_server.domain.accounts.hooks import Hooks
from watchword_server.domain.common import outbox
from watchword_server.domain.common.clock import Clock, SystemClock
from watchword_server.model.errors import DependencyUnavailable
from watchword_server.runtime.database_watch import DatabaseWatch
from watchword_server.runtime.event_stream import EventStream
from watchword_server.runtime.mail_sender import MailSender
from watchword_server.runtime.mail_transports import MailTransport
from watchword_server.runtime.metrics import (
    MULTIPROCESS_DIR,
    Metrics,
    MetricsServer,
    PoolUse,
    serve_metrics,
)
from watchword_server.runtime.periodic import Periodic
from watchword_server.security import common_passwords
from watchword_server.startup import SchemaNotReady, StartupError, check_schema
from watchword_server.storage.db import Database, Engine, create_engine
from watchword_server.supervisor import AddressInUse, free_address
from watchword_server.transport.server import RPC_NAMES, AddServices, AioServer, GrpcServer
from watchword_server.transport.tls import ServerCredentials, TlsError, server_credentials
from watchword_server.wiring import Domain, build_domain

__all__ = ["SchemaNotReady", "StartupError", "WatchwordServer", "check_schema", "tls_credentials"]

_log = logging.getLogger(__name__)

# Seconds between reads of what metrics report from the database (the mail outbox).
_METRICS_REFRESH = 10.0


def tls_credentials(settings: Settings) -> ServerCredentials | None:
    """The TLS credentials the settings name (None: plaintext), or a StartupError saying
    which file cannot be used and why."""
    try:
        return server_credentials(settings)
    except TlsError as error:
        raise StartupError(str(error)) from None


class WatchwordServer:
    """One server process: call ``start()``, then ``stop()`` (or ``wait_for_termination()``).

    Args:
        settings: What to serve, where, on which database.
        clock: The domain's clock (tests set one).
        mail_transport: Where mail goes (None: as the settings say).
        reuse_port: Share the port with the other workers of one ``serve --workers``.
        hooks: The application's hooks (see ``watchword_server.embedding``).
        extra_services: The application's services, served beside ours.
        reflected_services: Their full names, for reflection.
        attach_to: An application's own server to add our services to: then ``start()``
            neither binds nor starts it (it returns 0) and ``stop()`` does not stop it.
        standard_services: Add health and reflection (False: the application has its own).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        mail_transport: MailTransport | None = None,
        reuse_port: bool = False,
        hooks: Hooks | None = None,
        extra_services: Sequence[AddServices] = (),
        reflected_services: Sequence[str] = (),
        attach_to: AioServer | None = None,
        standard_services: bool = True,
    ) -> None:
        self.settings = settings
        self._reuse_port = reuse_port
        self._hooks = hooks
        self._extra_services = tuple(extra_services)
        self._reflected = tuple(reflected_services)
        self._attach_to = attach_to
        self._standard = standard_services
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
        self.metrics_port = 0
        self._metrics_server: MetricsServer | None = None
        self._metrics_refresh: Periodic | None = None

    async def start(self) -> int:
        """Check the schema, bind ``settings.listen`` and start serving; returns the port."""
        unknown = sorted(set(self.settings.disabled_rpcs) - set(RPC_NAMES))
        if unknown:
            raise StartupError(f"disabled_rpcs names no RPC of the contract: {unknown}")
        attached = self._attach_to is not None
        credentials = None if attached else tls_credentials(self.settings)
        await check_schema(self.engine, self.settings)
        if self.settings.password_refuse_common:
            # Now, not in the first registration's time. Here rather than in build_domain:
            # the commands that build the domain (`watchword users …`) load it when a
            # password is checked, if ever.
            common_passwords.load()
        domain = build_domain(
            self.settings,
            Database(self.engine),
            self.clock,
            mail_transport=self._mail_transport,
            hooks=self._hooks,
        )
        settings = self.settings
        metrics = self._metrics(domain)
        server = GrpcServer(
            settings,
            domain,
            reuse_port=self._reuse_port,
            metrics=None if metrics is None else metrics.rpc,
            server=self._attach_to,
            extra_services=self._extra_services,
            reflected=self._reflected,
            standard=self._standard,
        )
        if self._attach_to is None:
            self.port = server.bind(settings.listen, credentials)
        if self._attach_to is None and self.port == 0:
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
        if metrics is not None:
            self._start_metrics(metrics)  # before serving: a port it cannot have stops us
        if domain.prepared is not None:
            await domain.prepared.warm()
        await domain.change_listener.start()
        await domain.touches.start()
        await domain.retention.start()
        # Watchers must find the stream running from the first call on.
        self.event_stream = domain.event_stream
        await domain.event_stream.start()
        if self._attach_to is None:
            await server.start()
        self._server = server
        await server.set_health(serving=True)
        self._database_watch = DatabaseWatch(Database(self.engine), self._database_changed)
        await self._database_watch.start()
        self.mail_sender = domain.mail_sender
        await domain.mail_sender.start()
        self.service_keys = domain.service_keys
        if self._attach_to is not None:
            _log.info("watchword is serving on the application's server")
            return 0
        _log.info(
            "watchword is serving on %s (port %d, %s)",
            settings.listen,
            self.port,
            _transport_security(settings),
        )
        return self.port

    def _metrics(self, domain: Domain) -> Metrics | None:
        # A worker of `serve --workers` writes to its group's files (the supervisor serves
        # them); a server on its own keeps a registry and serves it.
        if self.settings.metrics_listen is None:
            return None
        metrics = Metrics(multiprocess_mode=self._reuse_port and MULTIPROCESS_DIR in os.environ)
        metrics.watch_cache("check", domain.check_cache.counts)
        metrics.watch_cache("service_key", domain.key_cache.counts)
        database = Database(self.engine)
        metrics.watch_pool(PoolUse("sqlalchemy", database.pool_use))
        if domain.prepared is not None:
            metrics.watch_pool(PoolUse("prepared", domain.prepared.use))
        hashing = domain.hashing
        metrics.watch_hashing(lambda: hashing.admitted)
        return metrics

    def _start_metrics(self, metrics: Metrics) -> None:
        listen = self.settings.metrics_listen
        database, clock = Database(self.engine), self.clock

        async def refresh() -> None:
            # The outbox is read now and then, not at each scrape (that runs in a thread of
            # its own); a worker's other states go to its group's files at the same pace.
            try:
                state = await outbox.state(database)
            except DependencyUnavailable:
                return  # the database watch says so already
            except Exception:  # noqa: BLE001 - metrics must not end the process's refreshes
                _log.warning("metrics: cannot read the mail outbox", exc_info=True)
                return
            oldest = 0.0 if state.oldest is None else (clock.now() - state.oldest).total_seconds()
            metrics.outbox(state.waiting, oldest, state.dead)
            if metrics.multiprocess:
                metrics.refresh()

        self._metrics_refresh = Periodic(refresh, _METRICS_REFRESH, "metrics refresh")
        self._metrics_refresh.start()
        if metrics.multiprocess or listen is None:
            return  # nobody scrapes this process: the supervisor serves the group
        try:
            self._metrics_server = serve_metrics(listen, metrics)
        except OSError as error:
            raise StartupError(f"cannot serve metrics on {listen}: {error}") from None
        self.metrics_port = self._metrics_server.port

    async def _database_changed(self, reachable: bool) -> None:
        # Ignored once shutting down: the health servicer then says NOT_SERVING for good.
        if self._server is not None:
            await self._server.set_health(serving=reachable)

    async def drain(self, cut_short: asyncio.Event | None = None) -> None:
        """Say NOT_SERVING for good but keep serving for ``shutdown_drain_seconds``, or
        until ``cut_short`` is set; then ``stop()``."""
        if self._database_watch is not None:  # it must not say SERVING again
            await self._database_watch.stop()
            self._database_watch = None
        delay = self.settings.shutdown_drain_seconds
        if self._server is None or delay <= 0:
            return
        await self._server.enter_graceful_shutdown()
        _log.info("draining: health says NOT_SERVING; calls are served for %g s more", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for((cut_short or asyncio.Event()).wait(), delay)

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
            if self._attach_to is None:  # an application's server is the application's
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
        if self._metrics_server is not None:
            self._metrics_server.stop()
            self._metrics_server = None
        if self._metrics_refresh is not None:
            await self._metrics_refresh.stop()
            self._metrics_refresh = None
        await self.engine.dispose()

    async def wait_for_termination(self) -> None:
        """Block until the server stops."""
        if self._server is not None and self._attach_to is None:
            await self._server.wait_for_termination()


def _transport_security(settings: Settings) -> str:
    if settings.tls_client_ca_file is not None:
        return "mutual TLS: client certificates required"
    return "TLS" if settings.tls_cert_file is not None else "plaintext"
