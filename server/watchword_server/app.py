"""Builds and runs the gRPC server: servicers, health, reflection and graceful shutdown."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.auth.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
)
from watchword_server.config import Settings
from watchword_server.domain.clock import Clock, SystemClock
from watchword_server.domain.event_stream import EventStream
from watchword_server.domain.mail import MailSender, MailTransport
from watchword_server.domain.service_keys import Scope, ServiceKeys
from watchword_server.runtime.database_watch import DatabaseWatch
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.schema import MigrationRefused, SchemaState, schema_state, upgrade
from watchword_server.supervisor import AddressInUse, free_address
from watchword_server.transport.access_servicer import AccessServicer
from watchword_server.transport.admin_servicer import AdminServicer
from watchword_server.transport.auth_servicer import AuthServicer
from watchword_server.transport.guard import build_servicer
from watchword_server.transport.registration import generic_only
from watchword_server.transport.service_key_check import ServiceKeyCheck
from watchword_server.wiring import Domain, build_domain

__all__ = ["SchemaNotReady", "StartupError", "WatchwordServer"]

_log = logging.getLogger(__name__)
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

_AUTH = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"]
_ACCESS = access_service_pb2.DESCRIPTOR.services_by_name["AccessService"]
_ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]


class StartupError(RuntimeError):
    """The server cannot start; the message says why and what to do."""


class SchemaNotReady(StartupError):
    """The database schema does not match this server; the message says what to run."""


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
        self.engine: AsyncEngine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size
        )
        self._mail_transport = mail_transport
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._database_watch: DatabaseWatch | None = None
        self.mail_sender: MailSender | None = None
        self.event_stream: EventStream | None = None
        self.service_keys: ServiceKeys | None = None
        self.domain: Domain | None = None
        self.port = 0

    async def _check_schema(self) -> None:
        state = await schema_state(self.engine)
        if state is SchemaState.BEHIND and self.settings.migrates_itself:
            _log.info("bringing the embedded database schema up to date")
            try:
                await upgrade(self.engine)
            except MigrationRefused as error:
                raise StartupError(str(error)) from None
        elif state is SchemaState.BEHIND:
            raise SchemaNotReady(
                "the database schema is behind this server: run `watchword migrate` first"
            )
        elif state is SchemaState.UNKNOWN:
            raise SchemaNotReady(
                "the database schema is newer than this server: upgrade the server"
            )

    async def start(self) -> int:
        """Check the schema, bind ``settings.listen`` and start serving; returns the port."""
        known = {m.name for service in (_AUTH, _ACCESS, _ADMIN) for m in service.methods}
        unknown = sorted(set(self.settings.disabled_rpcs) - known)
        if unknown:
            raise StartupError(f"disabled_rpcs names no RPC of the contract: {unknown}")
        await self._check_schema()
        domain = build_domain(
            self.settings, Database(self.engine), self.clock, mail_transport=self._mail_transport
        )
        settings = self.settings
        keys = domain.service_keys
        server = grpc.aio.server(
            # Sharing a port is for the workers of one `serve --workers` only: a second,
            # unrelated server on a port in use must fail to bind, not split the traffic.
            options=[("grpc.so_reuseport", 1 if self._reuse_port else 0)],
        )
        # Every service goes in through generic handlers only, ours with bodies that cannot
        # be decoded left to the guard: see transport/registration.py.
        services = generic_only(server, lenient=True)

        disabled, messages = settings.disabled_rpcs, settings.messages
        auth = build_servicer(
            AuthServicer,
            _AUTH,
            domain.accounts,
            domain.sessions,
            domain.passwords,
            domain.profiles,
            settings.trusted_proxies,
            [field.name for field in settings.custom_fields if not field.readable],
            disabled=disabled,
            messages=messages,
            key_check=ServiceKeyCheck(keys, Scope.ACCESS) if settings.auth_requires_key else None,
        )
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(auth, services)
        access = build_servicer(
            AccessServicer,
            _ACCESS,
            domain.checks,
            messages,
            disabled=disabled,
            messages=messages,
            key_check=ServiceKeyCheck(keys, Scope.ACCESS),
        )
        access_service_pb2_grpc.add_AccessServiceServicer_to_server(access, services)
        admin = build_servicer(
            AdminServicer,
            _ADMIN,
            domain.user_admin,
            domain.group_admin,
            domain.event_reader,
            settings.trusted_proxies,
            disabled=disabled,
            messages=messages,
            key_check=ServiceKeyCheck(keys, Scope.ADMIN),
        )
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, services)

        standard = generic_only(server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, standard)
        # What reflection.enable_server_reflection does for an aio server, through standard
        # (the generated reflection module has no type hints).
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(  # type: ignore[no-untyped-call]
            reflection.aio.ReflectionServicer(
                [
                    _AUTH.full_name,
                    _ACCESS.full_name,
                    _ADMIN.full_name,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ]
            ),
            standard,
        )
        try:
            self.port = server.add_insecure_port(settings.listen)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            try:  # say why: taken, or not an address of this machine
                free_address(settings.listen)
            except AddressInUse as error:
                raise StartupError(str(error)) from None
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
        await self._set_health(serving=True)
        self._database_watch = DatabaseWatch(Database(self.engine), self._database_changed)
        await self._database_watch.start()
        self._server = server
        self.mail_sender = domain.mail_sender
        await domain.mail_sender.start()
        self.service_keys = domain.service_keys
        _log.info("watchword is serving on %s (port %d)", settings.listen, self.port)
        return self.port

    async def _set_health(self, *, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else _NOT_SERVING
        for name in ("", _AUTH.full_name, _ACCESS.full_name, _ADMIN.full_name):
            await self._health.set(name, status)

    async def _database_changed(self, reachable: bool) -> None:
        # Ignored once shutting down: the health servicer then says NOT_SERVING for good.
        await self._set_health(serving=reachable)

    async def stop(self, grace: float | None = None) -> None:
        """Say NOT_SERVING, let running calls finish within ``grace`` seconds, then close."""
        if self._database_watch is not None:
            await self._database_watch.stop()
            self._database_watch = None
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
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
