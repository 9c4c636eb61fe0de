"""Who is calling, by address: the end user's when a trusted proxy (an app backend) names
it in metadata, else the peer's own. A header from anyone else is ignored, or an attacker
could forge audit records and dodge or aim the per-client throttle.

The RPC observer (``rpc_observer.py``) sets it once per call, for the services that record
it (AuthService and AdminService), before their servicers run; they read it with
``client_ip()``. Other calls (the checks, Health) pay nothing for it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Collection
from typing import Any

import grpc

__all__ = ["CLIENT_IP_METADATA", "ClientAddresses", "client_ip"]

# The calling backend reports its end user's address here; without it we record the peer.
CLIENT_IP_METADATA = ("x-forwarded-for", "x-real-ip")

_MAX_ADDRESS = 64

# Each call runs in a task of its own, so what is set here stays with the call.
_current: contextvars.ContextVar[str] = contextvars.ContextVar("watchword_client_ip")


def client_ip() -> str:
    """The running call's client address, as the RPC observer set it.

    Raises:
        LookupError: the call's service is not one the observer addresses (a wiring
            mistake, better loud than an audit record without an address).
    """
    return _current.get()


class ClientAddresses:
    """Tells a call's client address from its peer and metadata.

    Args:
        trusted_proxies: The peers (IP addresses, or ``*`` for any) whose
            ``x-forwarded-for`` / ``x-real-ip`` names the client.
    """

    def __init__(self, trusted_proxies: Collection[str]) -> None:
        self._trusted = frozenset(trusted_proxies)
        self._anyone = "*" in self._trusted

    def set_for(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Make ``context``'s client address the running call's ``client_ip()``."""
        _current.set(self.of(context))

    def of(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The client address of the call of ``context``."""
        peer = _peer_address(context.peer())
        if self._anyone or peer in self._trusted:
            metadata = {key: value for key, value in (context.invocation_metadata() or ())}
            for key in CLIENT_IP_METADATA:
                value = metadata.get(key)
                if isinstance(value, str) and value.strip():
                    return value.split(",")[0].strip()[:_MAX_ADDRESS]
        return peer


def _peer_address(peer: str) -> str:
    # "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path"
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer[:_MAX_ADDRESS]
