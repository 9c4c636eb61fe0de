"""The service-key check that AccessService and AdminService (and AuthService when
``auth_requires_key`` is set) run before each RPC.

It runs inside the RPC's guarded handler (``transport/rpc_wrapping.py``), not in a server
interceptor: a grpc.aio interceptor is one more coroutine on every call of every service,
Health included, and this check is on the path of every access check. Running inside the
handler also makes the caller it finds visible to the servicer through ``current_caller``.
Where the servicer needs no caller, the key gate (``transport/registration.py``) asks
``admits`` first, with the metadata gRPC read to find the handler, and a call whose key the
cache vouches for skips the check in the handler.

A key bound to a client certificate subject (``keys create --client-subject``) is checked
against the subject of the call's verified client certificate, which only the RPC's context
tells (``auth_context``): the gate never admits such a key, so its calls always take the
check in the handler.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import grpc

from watchword_server.domain.access.service_keys import (
    Caller,
    Scope,
    ServiceKeys,
    require_client_subject,
)
from watchword_server.model.errors import DependencyUnavailable, DomainError
from watchword_server.transport.registration import Metadata

__all__ = ["ServiceKeyCheck", "client_subject", "current_caller"]

_log = logging.getLogger(__name__)

current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "watchword_current_caller", default=None
)


class ServiceKeyCheck:
    """Requires a bearer service key whose scope covers ``scope``.

    ``known`` answers from the cache; calling it with an RPC's context returns the caller
    (reading the database if need be), or raises the ``DomainError``
    that says why not (the RPC wrapping maps it to its status); a key store that cannot be read
    raises ``DependencyUnavailable``.
    """

    def __init__(self, keys: ServiceKeys, scope: Scope) -> None:
        self._keys = keys
        self._scope = scope

    def known(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller | None:
        """The caller when its key is cached, without a suspension; else None (then
        await the check itself)."""
        authorization = _authorization(context.invocation_metadata() or ())
        if authorization is None:
            return None
        caller = self._keys.known(authorization, self._scope)
        if caller is not None and caller.client_subject is not None:
            require_client_subject(caller, client_subject(context))
        return caller

    def admits(self, metadata: Metadata) -> bool:
        """Whether the cache vouches for the key in a call's ``metadata`` (the key gate's
        question, see ``transport/registration.py``). False says only that the check
        itself must decide: no key, a key not cached, or one whose scope is too small."""
        authorization = None  # _authorization inlined: the gate asks for every keyed call
        for key, value in metadata:
            if key == "authorization":
                authorization = value
        if type(authorization) is not str:
            return False
        try:
            caller = self._keys.known(authorization, self._scope)
        except DomainError:
            return False
        # A key bound to a certificate subject: only the RPC's context can tell the subject.
        return caller is not None and caller.client_subject is None

    async def __call__(self, context: grpc.aio.ServicerContext[Any, Any]) -> Caller:
        try:
            caller = await self._keys.authenticate(
                _authorization(context.invocation_metadata() or ()), self._scope
            )
            if caller.client_subject is not None:
                require_client_subject(caller, client_subject(context))
            return caller
        except (DomainError, DependencyUnavailable):
            raise
        except Exception as error:
            # Whatever else stops the check, the caller must hear UNAVAILABLE, not UNKNOWN.
            _log.exception("the service key could not be checked")
            raise DependencyUnavailable("the service key cannot be checked") from error


def client_subject(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The subject of the call's client certificate, as gRPC reports it (RFC 4514, e.g.
    ``CN=billing,O=Example``); None without one. gRPC reports only a certificate it
    verified: a server with ``tls_client_ca_file`` requires and verifies every one."""
    subject = next(iter(context.auth_context().get("x509_subject", ())), None)
    try:
        return None if subject is None else subject.decode()
    except UnicodeDecodeError:  # matches no bound key, as no certificate would
        return None


def _authorization(metadata: Metadata) -> str | None:
    authorization = None
    for key, value in metadata:
        if key == "authorization" and isinstance(value, str):
            authorization = value
    return authorization
