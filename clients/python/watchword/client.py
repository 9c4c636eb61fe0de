"""The Watchword clients: :class:`AsyncClient` (asyncio) and :class:`Client` (blocking).

Both open one gRPC channel for AuthService, AccessService and AdminService and offer one
method per RPC with keyword-only arguments; failures raise :mod:`watchword.errors`.
"""

from __future__ import annotations

from watchword._async import AsyncClient
from watchword._async_transport import AsyncEventStream
from watchword._base import USE_CLIENT_DEFAULT, CallMetadata, Timeout, UseClientDefault
from watchword._sync import Client
from watchword._sync_transport import EventStream

__all__ = [
    "USE_CLIENT_DEFAULT",
    "AsyncClient",
    "AsyncEventStream",
    "CallMetadata",
    "Client",
    "EventStream",
    "Timeout",
    "UseClientDefault",
]
