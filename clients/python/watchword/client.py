"""The Watchword clients: :class:`AsyncClient` (asyncio) and :class:`Client` (blocking).

Both open one gRPC channel for AuthService, AccessService and AdminService and offer one
method per RPC with keyword-only arguments; failures raise :mod:`watchword.errors`.
``batch_check`` takes :class:`MembershipCheck` and :class:`PermissionCheck` items and gives
a :class:`CheckResult` for each.
"""

from __future__ import annotations

from watchword._async import AsyncClient
from watchword._async_transport import AsyncEventStream
from watchword._base import (
    READ_YOUR_WRITES_WINDOW,
    USE_CLIENT_DEFAULT,
    CallMetadata,
    Timeout,
    UseClientDefault,
)
from watchword._checks import (
    MAX_BATCH_CHECKS,
    AnyCheck,
    CheckResult,
    MembershipCheck,
    PermissionCheck,
)
from watchword._sync.client import Client
from watchword._sync_transport import EventStream

__all__ = [
    "MAX_BATCH_CHECKS",
    "READ_YOUR_WRITES_WINDOW",
    "USE_CLIENT_DEFAULT",
    "AnyCheck",
    "AsyncClient",
    "AsyncEventStream",
    "CallMetadata",
    "CheckResult",
    "Client",
    "EventStream",
    "MembershipCheck",
    "PermissionCheck",
    "Timeout",
    "UseClientDefault",
]
