"""Builds and runs the gRPC server: servicers, health, reflection and graceful shutdown."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
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
from watchword_server.domain.account_keys import MailedKeys
from watchword_server.domain.accounts import Accounts
from watchword_server.domain.clock import Clock, SystemClock
from watchword_server.domain.events import EventLog
from watchword_server.domain.mail import MailSender, MailTransport, transport_from_settings
from watchword_server.domain.password_flows import PasswordFlows
from watchword_server.domain.profile import Profiles
from watchword_server.domain.sessions import Sessions
from watchword_server.embedded import load_or_create_embedded_key
from watchword_server.security.keyring import KeyRing
from watchword_server.security.passwords import PasswordHasher, Pepper
from watchword_server.storage.db import create_engine
from watchword_server.storage.schema import SchemaState, schema_state, upgrade
from watchword_server.transport.auth_servicer import AuthServicer
from watchword_server.transport.guard import build_servicer

__all__ = ["SchemaNotReady", "WatchwordServer", "build_keyring"]

_log = logging.getLogger(__name__)

_AUTH = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"]
_ACCESS = access_service_pb2.DESCRIPTOR.services_by_name["AccessService"]
_ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]


class SchemaNotReady(RuntimeError):
    """The database schema does not match this server; the message says what to run."""


def build_keyring(settings: Settings) -> KeyRing:
    """The pepper and its retired predecessors, by id."""
    key = settings.hmac_key
    if key is None:
        key = load_or_create_embedded_key(settings.database_url)
    keys = {key_id: value.encode() for key_id, value in settings.hmac_retired_keys.items()}
    keys[settings.hmac_key_id] = key.encode()
    return KeyRing(current_id=settings.hmac_key_id, keys=keys)


@dataclass
class _Domain:
    accounts: Accounts
    sessions: Sessions
    passwords: PasswordFlows
    profiles: Profiles
    mail_sender: MailSender


class WatchwordServer:
    """One server process: call ``start()``, then ``stop()`` (or ``wait_for_termination()``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        mail_transport: MailTransport | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: AsyncEngine = create_engine(
            settings.database_url, pool_size=settings.database_pool_size
        )
        self._mail_transport = mail_transport
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self.mail_sender: MailSender | None = None
        self.port = 0

    def _domain(self) -> _Domain:
        settings, engine, clock = self.settings, self.engine, self.clock
        keyring = build_keyring(settings)
        hasher = PasswordHasher(
            settings.hmac_alg, Pepper(keyring.current_id, keyring.current), keyring.retired()
        )
        events = EventLog(settings.messages, clock, enabled=settings.log_events)
        sessions = Sessions(
            engine,
            clock,
            short=settings.session_expiration,
            long=settings.session_long_expiration,
        )
        keys = MailedKeys(settings, keyring, clock)
        transport = self._mail_transport or transport_from_settings(settings)
        sender = MailSender(engine, transport, keys.render, clock)
        accounts = Accounts(
            settings, engine, hasher, sessions, events, keys, clock, mail_queued=sender.wake
        )
        passwords = PasswordFlows(
            settings, engine, hasher, sessions, events, keys, clock, mail_queued=sender.wake
        )
        profiles = Profiles(settings, engine, sessions, events, clock)
        return _Domain(accounts, sessions, passwords, profiles, sender)

    async def _check_schema(self) -> None:
        state = await schema_state(self.engine)
        if state is SchemaState.BEHIND and self.settings.migrates_itself:
            _log.info("bringing the embedded database schema up to date")
            await upgrade(self.engine)
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
        await self._check_schema()
        domain = self._domain()
        settings = self.settings
        server = grpc.aio.server()

        disabled, messages = settings.disabled_rpcs, settings.messages
        auth = build_servicer(
            AuthServicer,
            _AUTH,
            domain.accounts,
            domain.sessions,
            domain.passwords,
            domain.profiles,
            disabled=disabled,
            messages=messages,
        )
        auth_service_pb2_grpc.add_AuthServiceServicer_to_server(auth, server)
        # Served from the first day so clients see the whole contract; RPCs that have not
        # landed yet answer UNIMPLEMENTED with the reason RPC_UNIMPLEMENTED.
        access = build_servicer(
            access_service_pb2_grpc.AccessServiceServicer,
            _ACCESS,
            disabled=disabled,
            messages=messages,
        )
        access_service_pb2_grpc.add_AccessServiceServicer_to_server(access, server)
        admin = build_servicer(
            admin_service_pb2_grpc.AdminServiceServicer,
            _ADMIN,
            disabled=disabled,
            messages=messages,
        )
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(admin, server)

        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            [
                _AUTH.full_name,
                _ACCESS.full_name,
                _ADMIN.full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            server,
        )
        self.port = server.add_insecure_port(settings.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {settings.listen}")
        await server.start()
        for name in ("", _AUTH.full_name, _ACCESS.full_name, _ADMIN.full_name):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self.mail_sender = domain.mail_sender
        await domain.mail_sender.start()
        _log.info("watchword is serving on %s (port %d)", settings.listen, self.port)
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Say NOT_SERVING, let running calls finish within ``grace`` seconds, then close."""
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
            await self._server.stop(self.settings.grace_period if grace is None else grace)
            self._server = None
        if self.mail_sender is not None:
            await self.mail_sender.stop()
            self.mail_sender = None
        await self.engine.dispose()

    async def wait_for_termination(self) -> None:
        """Block until the server stops."""
        if self._server is not None:
            await self._server.wait_for_termination()
