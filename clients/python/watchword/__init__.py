"""Watchword: a typed Python client for the Watchword auth service over gRPC.

Usage::

    from watchword import AsyncClient, Unauthenticated

    async with AsyncClient("localhost:50051", service_key=key) as client:
        try:
            login = await client.authenticate(email=email, password=password)
        except Unauthenticated as error:
            print(error.reason, error.message)

Protect a service of your own with ``requires`` (a method) or ``RequireInterceptor`` (a
whole service), after ``configure(client)``; see :func:`requires`. The generated messages
and stubs are in :mod:`watchword.auth.v1`.
"""

from __future__ import annotations

# `watchword.requires` is the decorator only; its module is private.
from watchword._requires import (
    Condition,
    ConditionLike,
    Denial,
    Guard,
    Otherwise,
    Record,
    RequireContext,
    RequireInterceptor,
    Undecidable,
    configure,
    current_context,
    has_membership,
    has_permission,
    is_logged,
    requires,
)
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
    "ConditionLike",
    "Denial",
    "Guard",
    "Otherwise",
    "Record",
    "RequireContext",
    "RequireInterceptor",
    "Undecidable",
    "configure",
    "current_context",
    "has_membership",
    "has_permission",
    "is_logged",
    "requires",
]
