"""Login sessions: random bearer tokens stored as digests, with sliding inactivity windows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchword_server.domain.clock import Clock
from watchword_server.domain.errors import SessionInvalid
from watchword_server.domain.types import SessionGrant, UserRecord, UserStatus
from watchword_server.security.tokens import new_token, token_digest
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import sessions as session_rows

__all__ = ["IntrospectResult", "SessionExpired", "Sessions", "digest_or_invalid"]

# The last-seen time is written only once this share of the window has passed, so a busy
# session costs one write per tenth of its window instead of one per call.
_TOUCH_FRACTION = 10
# Tokens longer than this are not ours; refuse them before hashing attacker-sized input.
_MAX_TOKEN_LENGTH = 256


class SessionExpired(SessionInvalid):
    """The session's window has passed; raised inside a transaction so the caller can
    drop the row in a transaction of its own (a rollback would undo the delete)."""

    def __init__(self, digest: bytes) -> None:
        super().__init__()
        self.digest = digest


@dataclass(frozen=True)
class IntrospectResult:
    """A valid session's owner, its id and when it expires if left unused."""

    user: UserRecord
    session_id: uuid.UUID
    expire_time: datetime


class Sessions:
    """Creates, checks and revokes sessions."""

    def __init__(self, database: Database, clock: Clock, *, short: int, long: int) -> None:
        self._database = database
        self._clock = clock
        self._short = short
        self._long = long

    def lifetime(self, remember: bool) -> int:
        """The inactivity window in seconds for a session with or without "remember me"."""
        return self._long if remember else self._short

    async def create(
        self, conn: Connection, user: UserRecord, *, remember: bool, client_ip: str
    ) -> SessionGrant:
        """Start a session for ``user`` inside the caller's transaction."""
        token = new_token()
        now = self._clock.now()
        lifetime = self.lifetime(remember)
        await session_rows.insert_session(
            conn,
            user_id=user.id,
            token_digest=token_digest(token),
            lifetime=lifetime,
            remember=remember,
            client_ip=client_ip,
            now=now,
        )
        return SessionGrant(token=token, expire_time=now + timedelta(seconds=lifetime))

    async def introspect(self, token: str) -> IntrospectResult:
        """Validate ``token`` and slide its window; raises SessionInvalid otherwise."""
        digest = digest_or_invalid(token)
        try:
            async with self._database.begin() as conn:
                row = await session_rows.find_with_user(conn, digest)
                if row is None:
                    raise SessionInvalid()
                expire_time = await self.admit(
                    conn,
                    digest,
                    session_id=row.id,
                    lifetime=row.lifetime,
                    last_seen_time=row.last_seen_time,
                    status=row.user.status,
                )
        except SessionExpired as expired:
            await self.drop(expired.digest)
            raise SessionInvalid() from None
        return IntrospectResult(row.user, row.id, expire_time)

    async def drop(self, digest: bytes) -> None:
        """Delete an expired session: no dead secret is kept around."""
        async with self._database.begin() as conn:
            await session_rows.delete_by_digest(conn, digest)

    async def admit(
        self,
        conn: Connection,
        digest: bytes,
        *,
        session_id: uuid.UUID,
        lifetime: int,
        last_seen_time: datetime,
        status: UserStatus,
    ) -> datetime:
        """Decide on a session read in ``conn``: returns its expiry after this use.

        Raises SessionExpired when it has expired (the caller then ``drop``s it after its
        transaction) and SessionInvalid when its user may no longer be logged in. Slides
        the window, writing at most once a tenth of it.
        """
        now = self._clock.now()
        window = timedelta(seconds=lifetime)
        if now >= last_seen_time + window:
            raise SessionExpired(digest)
        if status is not UserStatus.ACTIVE:
            raise SessionInvalid()
        if now - last_seen_time >= window / _TOUCH_FRACTION:
            await session_rows.touch(conn, session_id, now)
            last_seen_time = now
        return last_seen_time + window

    async def revoke(self, conn: Connection, token: str) -> uuid.UUID:
        """Revoke one session and return its user's id; raises SessionInvalid if unknown."""
        user_id = await session_rows.delete_by_digest(conn, digest_or_invalid(token))
        if user_id is None:
            raise SessionInvalid()
        return user_id


def digest_or_invalid(token: str) -> bytes:
    """The stored digest of ``token``; raises SessionInvalid for what cannot be a token."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise SessionInvalid()
    return token_digest(token)
