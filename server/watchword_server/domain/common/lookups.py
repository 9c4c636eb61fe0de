"""Turning the opaque ids callers send into rows, or the right NOT_FOUND."""

from __future__ import annotations

import uuid

from watchword_server.model.errors import DomainError, UserNotFound
from watchword_server.model.records import UserRecord
from watchword_server.storage.db import Connection
from watchword_server.storage.repositories import users as user_rows

__all__ = ["existing_user", "parse_id"]


def parse_id(value: str, missing: type[DomainError]) -> uuid.UUID:
    """The id inside an opaque id string; anything that is not one of ours is ``missing``."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise missing() from None


async def existing_user(conn: Connection, user_id: str, *, lock: bool = False) -> UserRecord:
    """The user with this opaque id (its row locked until the transaction ends, with
    ``lock``: for read-modify-write); raises UserNotFound."""
    user = await user_rows.get(conn, parse_id(user_id, UserNotFound), lock=lock)
    if user is None:
        raise UserNotFound()
    return user
