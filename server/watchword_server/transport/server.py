"""The gRPC server of one process: our three services, health and reflection on one port
(plaintext, or TLS only: see tls.py).

``app.py`` runs the process (schema, background work, shutdown order); this module is all
it needs of gRPC: build the server over the domain, bind, serve, say how healthy it is,
and stop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from watchword.auth.v1 import (
    access_service_pb2,
    access_service_pb2_grpc,
    admin_service_pb2,
    admin_service_pb2_grpc,
    auth_service_pb2,
    auth_service_pb2_grpc,
)
from watchword_server.config import Settings
from watchword_server.domain.access.checks import AccessChecks
from watchword_server.domain.access.service_keys import Scope, ServiceKeys
from watchword_server.domain.accounts.accounts import Accounts
from watchword_server.domain.accounts.passkeys import Passkeys
from watchword_server.domain.accounts.password_flows import PasswordFlows
from watchword_server.domain.accounts.profile import Profiles
from watchword_server.domain.accounts.second_factors import SecondFactors
from watchword_server.domain.accounts.sessions import Sessions
from watchword_server.domain.admin.app_events import ApplicationEvents
from watchword_server.domain.admin.events import EventReader
from watchword_server.domain.admin.groups import GroupAdmin
from watchword_server.domain.admin.second_factors import SecondFactorAdmin
from watchword_server.domain.admin.users import UserAdmin
from watchword_server.runtime.metrics import RpcMetrics
from watchword_server.transport.client_address import ClientAddresses
from watchword_server.transport.reflection import add_reflection
from watchword_server.transport.registration import add_key_gated, generic_only
from watchword_server.transport.rpc_observer import RpcObserver
from watchword_server.transport.rpc_wrapping import wrap_servicer
from watchword_server.transport.service_key_check import ServiceKeyCheck
from watchword_server.transport.servicers.access import AccessServicer
from watchword_server.transport.servicers.admin import AdminServicer
from watchword_server.transport.servicers.auth import AuthServicer

__all__ = ["RPC_NAMES", "AddServices", "AioServer", "GrpcServer", "ServedDomain"]

_AUTH = auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"]
_ACCESS = access_service_pb2.DESCRIPTOR.services_by_name["AccessService"]
_ADMIN = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"]
# A generated add_*_to_server function.
AddToServer = Callable[[Any, grpc.aio.Server], None]

AioServer = grpc.aio.Server
"""The server an application owns, named here for the composition roots (which do not
import gRPC themselves)."""

AddServices = Callable[[grpc.aio.Server], None]
"""Adds an application's services to a server, e.g.
``lambda server: add_GreeterServicer_to_server(Greeter(), server)``."""

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

RPC_NAMES: Collection[str] = frozenset(
    method.name for service in (_AUTH, _ACCESS, _ADMIN) for method in service.methods
)
"""Every RPC of the contract by its short name (what ``disabled_rpcs`` names)."""


class ServedDomain(Protocol):
    """The domain services the servicers call. ``wiring.Domain`` is one; it is named here
    as a protocol so that the transport does not import the composition root that
    builds it (which imports everything)."""

    @property
    def accounts(self) -> Accounts: ...
    @property
    def sessions(self) -> Sessions: ...
    @property
    def passwords(self) -> PasswordFlows: ...
    @property
    def profiles(self) -> Profiles: ...
    @property
    def second_factors(self) -> SecondFactors: ...
    @property
    def second_factor_admin(self) -> SecondFactorAdmin: ...
    @property
    def passkeys(self) -> Passkeys: ...
    @property
    def checks(self) -> AccessChecks: ...
    @property
    def user_admin(self) -> UserAdmin: ...
    @property
    def group_admin(self) -> GroupAdmin: ...
    @property
    def event_reader(self) -> EventReader: ...
    @property
    def app_events(self) -> ApplicationEvents: ...
    @property
    def service_keys(self) -> ServiceKeys: ...


class GrpcServer:
    """Our services over ``domain``, with health and reflection, not yet bound.

    Args:
        settings: The process's settings (disabled RPCs, messages, keys, proxies).
        domain: What the servicers call.
        reuse_port: Share the port with the other workers of one ``serve --workers``.
        metrics: Where every RPC is counted and timed (None: nowhere).
        server: An application's own server to add our services to (None: one of ours).
            The application then binds, starts and stops it; ``bind``, ``start``,
            ``stop`` and ``wait_for_termination`` are for a server of ours only.
        extra_services: The application's services, added after ours (and so never
            answering for ours); our RPC wrapping and observer do not see their calls.
        reflected: Their full service names, listed by reflection beside ours.
        standard: Add health and reflection (an application with its own says False).
    """

    def __init__(
        self,
        settings: Settings,
        domain: ServedDomain,
        *,
        reuse_port: bool = False,
        metrics: RpcMetrics | None = None,
        server: grpc.aio.Server | None = None,
        extra_services: Sequence[AddServices] = (),
        reflected: Sequence[str] = (),
        standard: bool = True,
    ) -> None:
        self._observe = RpcObserver(
            metrics,
            access_log=settings.logs_rpcs,
            keys=domain.service_keys,
            # The services whose servicers record who calls (call_context): the checks
            # and Health do not, and pay nothing for it.
            addresses=ClientAddresses(settings.trusted_proxies),
            addressed={_AUTH.full_name, _ADMIN.full_name},
        ).wrap
        self._health = health.aio.HealthServicer()
        self._server = server or grpc.aio.server(
            # Sharing a port is for the workers of one `serve --workers` only: a second,
            # unrelated server on a port in use must fail to bind, not split the traffic.
            options=[("grpc.so_reuseport", 1 if reuse_port else 0)],
        )
        self._add_ours(settings, domain)
        for add in extra_services:
            add(self._server)
        if standard:
            self._add_standard(reflected)

    def _add_ours(self, settings: Settings, domain: ServedDomain) -> None:
        # Every service goes in through generic handlers only, ours with bodies that cannot
        # be decoded left to the RPC wrapping: see transport/registration.py.
        keys = domain.service_keys
        auth = AuthServicer(
            domain.accounts,
            domain.sessions,
            domain.passwords,
            domain.profiles,
            domain.second_factors,
            domain.passkeys,
            [field.name for field in settings.custom_fields if not field.readable],
        )
        add_auth = auth_service_pb2_grpc.add_AuthServiceServicer_to_server
        if settings.auth_requires_key:
            self._add_key_gated(
                settings, add_auth, auth, _AUTH, ServiceKeyCheck(keys, Scope.ACCESS)
            )
        else:
            self._add_open(settings, add_auth, auth, _AUTH)
        self._add_key_gated(
            settings,
            access_service_pb2_grpc.add_AccessServiceServicer_to_server,
            AccessServicer(domain.checks, settings.messages),
            _ACCESS,
            ServiceKeyCheck(keys, Scope.ACCESS),
        )
        admin = wrap_servicer(
            AdminServicer(
                domain.user_admin,
                domain.group_admin,
                domain.event_reader,
                domain.second_factor_admin,
                domain.app_events,
            ),
            _ADMIN,
            disabled=settings.disabled_rpcs,
            messages=settings.messages,
            key_check=ServiceKeyCheck(keys, Scope.ADMIN),
            publish_caller=True,  # its writes are made on the caller's behalf: no gate
        )
        admin_service_pb2_grpc.add_AdminServiceServicer_to_server(
            admin, generic_only(self._server, lenient=True, observe=self._observe)
        )

    def _add_open(
        self, settings: Settings, add: AddToServer, servicer: object, service: ServiceDescriptor
    ) -> None:
        wrapped = wrap_servicer(
            servicer, service, disabled=settings.disabled_rpcs, messages=settings.messages
        )
        add(wrapped, generic_only(self._server, lenient=True, observe=self._observe))

    def _add_key_gated(
        self,
        settings: Settings,
        add: AddToServer,
        servicer: object,
        service: ServiceDescriptor,
        key_check: ServiceKeyCheck,
    ) -> None:
        # Two wrappings of one servicer (each a copy sharing its state): with the key
        # check, and without it for the calls whose key the gate found in the cache.
        disabled, messages = settings.disabled_rpcs, settings.messages
        add_key_gated(
            self._server,
            add,
            checked=wrap_servicer(
                servicer, service, disabled=disabled, messages=messages, key_check=key_check
            ),
            admitted=wrap_servicer(servicer, service, disabled=disabled, messages=messages),
            admits=key_check.admits,
            lenient=True,
            observe=self._observe,
        )

    def _add_standard(self, reflected: Sequence[str]) -> None:
        standard = generic_only(self._server, observe=self._observe)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, standard)
        add_reflection(
            standard,
            [
                _AUTH.full_name,
                _ACCESS.full_name,
                _ADMIN.full_name,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                *reflected,
            ],
        )

    def bind(self, listen: str, credentials: grpc.ServerCredentials | None = None) -> int:
        """Listen on ``listen`` (host:port), with TLS if given ``credentials`` (then only
        with TLS); the port bound, or 0 if it cannot be bound."""
        try:
            if credentials is not None:
                return self._server.add_secure_port(listen, credentials)
            return self._server.add_insecure_port(listen)
        except RuntimeError:
            return 0

    async def start(self) -> None:
        """Start serving on the bound port."""
        await self._server.start()

    async def set_health(self, *, serving: bool) -> None:
        """Say SERVING or NOT_SERVING, for the whole server and each of our services."""
        status = _SERVING if serving else _NOT_SERVING
        for name in ("", _AUTH.full_name, _ACCESS.full_name, _ADMIN.full_name):
            await self._health.set(name, status)

    async def enter_graceful_shutdown(self) -> None:
        """Say NOT_SERVING for good: later health changes are ignored."""
        await self._health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """Refuse new calls and let running ones finish within ``grace`` seconds."""
        await self._server.stop(grace)

    async def wait_for_termination(self) -> None:
        """Block until the server stops."""
        await self._server.wait_for_termination()
