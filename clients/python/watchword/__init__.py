"""Watchword: a typed Python client for the Watchword auth service over gRPC.

Usage::

    from watchword import AsyncClient, Unauthenticated

    async with AsyncClient("localhost:50051", service_key=key) as client:
        try:
            login = await client.authenticate(email=email, password=password)
        except Unauthenticated as error:
            print(error.reason, error.message)

Protect a service of your own with ``requires`` (a method) or ``RequireInterceptor`` (a
whole service); see :mod:`watchword.requires`. The generated messages and stubs are in
:mod:`watchword.auth.v1`.
"""

from __future__ import annotations

from watchword.client import AsyncClient, CheckResult, Client, MembershipCheck, PermissionCheck
from watchword.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
    WatchwordError,
    from_rpc_error,
    from_status,
)

# `watchword.requires` is the decorator; configure the default guard with
# `from watchword.requires import configure` (a from-import still reaches the module).
from watchword.requires import (
    Condition,
    Denial,
    Guard,
    RequireContext,
    RequireInterceptor,
    Undecidable,
    current_context,
    has_membership,
    has_permission,
    is_logged,
    requires,
)

__version__ = "0.1.0"  # the repository's VERSION; pyproject.toml reads it (a test checks)

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "CheckResult",
    "Client",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "MembershipCheck",
    "NotFound",
    "OutOfRange",
    "PermissionCheck",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WatchwordError",
    "__version__",
    "from_rpc_error",
    "from_status",
    "Condition",
    "Denial",
    "Guard",
    "RequireContext",
    "RequireInterceptor",
    "Undecidable",
    "current_context",
    "has_membership",
    "has_permission",
    "is_logged",
    "requires",
]
