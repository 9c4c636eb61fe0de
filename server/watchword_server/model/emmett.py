"""What ``watchword import-emmett`` reads from an Emmett 2.8 database, as plain values.

Emmett's Auth keeps five tables: the users (``auth_users`` unless the app's own user model
renames it, perhaps with extra columns), ``auth_groups``, ``auth_memberships``,
``auth_permissions`` and ``auth_events``; every one also has ``created_at`` and
``updated_at``, naive UTC times. These records hold the columns the import uses, as read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "EmmettDatabase",
    "EmmettEvent",
    "EmmettGroup",
    "EmmettMembership",
    "EmmettPermission",
    "EmmettUser",
]


@dataclass(frozen=True)
class EmmettUser:
    """A row of the user table. ``registration_key`` is Emmett's status word or key;
    ``extra`` holds the columns the stock model does not have, by name."""

    id: int
    email: str
    password: str
    registration_key: str
    reset_password_key: str
    first_name: str
    last_name: str
    created_at: datetime | None
    updated_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmmettGroup:
    """A row of ``auth_groups`` (``role`` is the group's unique name)."""

    id: int
    role: str
    description: str
    created_at: datetime | None


@dataclass(frozen=True)
class EmmettMembership:
    """A row of ``auth_memberships``; Emmett lets the same pair appear more than once."""

    id: int
    user_id: int | None
    group_id: int | None
    created_at: datetime | None


@dataclass(frozen=True)
class EmmettPermission:
    """A row of ``auth_permissions``: ``table_name`` is NULL or ``''`` and ``record_id`` 0
    (or NULL) when the grant names no table or record."""

    id: int
    group_id: int | None
    name: str
    table_name: str | None
    record_id: int | None
    created_at: datetime | None


@dataclass(frozen=True)
class EmmettEvent:
    """A row of ``auth_events``: ``description`` is the raw template (a literal ``{id}``)."""

    id: int
    user_id: int | None
    description: str
    origin: str
    client_ip: str
    created_at: datetime | None


@dataclass(frozen=True)
class EmmettDatabase:
    """Everything read from one Emmett database."""

    user_table: str
    extra_columns: tuple[str, ...]
    users: tuple[EmmettUser, ...]
    groups: tuple[EmmettGroup, ...]
    memberships: tuple[EmmettMembership, ...]
    permissions: tuple[EmmettPermission, ...]
    events: tuple[EmmettEvent, ...]
