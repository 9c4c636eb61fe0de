"""Login sessions: random bearer tokens stored as digests, with sliding inactivity windows.

A valid session is cached by its token's digest (``CheckCache``), so Introspect and checks
through a session usually touch no database. A cached session is trusted only while its
window, as last seen here, is open: past that, the database decides (another process may
have slid it). Sliding is written in batches by the ``TouchWriter``, at most once a tenth
of the window per session and process.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import NamedTuple

from watchword_server.domain.access.changes import Change, ChangeNotices
from watchword_server.domain.access.check_cache import CheckCache
from watchword_server.domain.common.clock import Clock
from watchword_server.model.errors import SessionInvalid
from watchword_server.model.records import SessionGrant, UserRecord, UserStatus
from watchword_server.security.tokens import new_token, token_digest
from watchword_server.storage.check_reads import CheckReads, SessionRow
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import sessions as session_rows
from watchword_server.storage.touch_writer import TouchWriter

__all__ = [
    "IntrospectResult",
    "NewSession",
    "Sessions",
    "ValidSession",
    "digest_or_invalid",
    "session_key",
]

# The window slides (and is written) only once this share of it has passed, so a busy
# session costs one write per tenth of its window instead of one per call.
_TOUCH_FRACTION = 10
# Tokens longer than this are not ours; refuse them before hashing attacker-sized input.
_MAX_TOKEN_LENGTH = 256


def session_key(digest: bytes) -> tuple[str, bytes]:
    """The cache key (and change tag) of the session with this token digest."""
    return ("session", digest)


@dataclass(frozen=True)
class NewSession:
    """A session to store: what its owner gets, and what the database keeps."""

    grant: SessionGrant
    id: uuid.UUID
    token_digest: bytes
    lifetime: int
    remember: bool
    now: datetime


class IntrospectResult(NamedTuple):
    """A valid session's owner, its id and when it expires if left unused."""

    user: UserRecord
    session_id: uuid.UUID
    expire_time: datetime


class ValidSession(NamedTuple):
    """A session found valid: its row, its expiry after this use, the revision it
    reflects, and its user's id as the check cache keys it."""

    row: SessionRow
    expire_time: datetime
    revision: str
    user_key: str


class _CachedSession:
    """A cached session with what every check through it compares, worked out once."""

    __slots__ = ("expires", "row", "slides", "user_key")

    def __init__(self, row: SessionRow) -> None:
        window = timedelta(seconds=row.lifetime)
        self.row = row
        self.expires = row.last_seen_time + window
        # Slide the window once a tenth of it has passed since it last slid.
        self.slides = row.last_seen_time + window / _TOUCH_FRACTION
        self.user_key = str(row.user.id)


class Sessions:
    """Creates, checks and revokes sessions."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        short: int,
        long: int,
        reads: CheckReads,
        cache: CheckCache,
        notices: ChangeNotices,
        touches: TouchWriter,
    ) -> None:
        self._database = database
        self._clock = clock
        self._short = short
        self._long = long
        self._reads = reads
        self._cache = cache
        self._notices = notices
        self._touches = touches

    def lifetime(self, remember: bool) -> int:
        """The inactivity window in seconds for a session with or without "remember me"."""
        return self._long if remember else self._short

    def new(self, *, remember: bool) -> NewSession:
        """A session not stored yet: its token (for its owner only), digest, id and window."""
        token = new_token()
        now = self._clock.now()
        lifetime = self.lifetime(remember)
        return NewSession(
            grant=SessionGrant(token=token, expire_time=now + timedelta(seconds=lifetime)),
            id=uuid.uuid4(),
            token_digest=token_digest(token),
            lifetime=lifetime,
            remember=remember,
            now=now,
        )

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

    async def introspect(
        self, token: str, *, min_revision: str = "", cached: bool = True
    ) -> IntrospectResult:
        """Validate ``token`` and slide its window; raises SessionInvalid otherwise.

        ``cached=False`` reads the database whatever the cache holds (for flows that write).
        """
        digest = digest_or_invalid(token)
        valid = self.cached(digest, min_revision) if cached else None
        if valid is None:
            generation, revision = self._cache.generation, self._cache.revision
            row = await self._reads.session(digest)
            valid = await self.accept(digest, row, generation, revision)
        return IntrospectResult(valid.row.user, valid.row.id, valid.expire_time)

    def known_user_key(self, token: str, min_revision: str = "") -> str | None:
        """The check cache's key for the user of session ``token``, when the cache holds
        the session and no slide is due: a check's hot path, with nothing to write and
        nothing to build. None: ``cached`` or the database decides."""
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            return None
        # token_digest inlined, as is the cache key: a Python frame fewer on every check
        # through a session (tests/e2e/test_hot_path.py fails if the two part).
        entry = self._cache.get(("session", sha256(token.encode()).digest()), min_revision)
        if entry is None:
            return None
        held: _CachedSession = entry.value
        # Before the slide is before the expiry: the slide comes a tenth into the window.
        return held.user_key if self._clock.now() < held.slides else None

    def cached(self, digest: bytes, min_revision: str = "") -> ValidSession | None:
        """The session from the cache if it is there and its window is open here."""
        entry = self._cache.get(("session", digest), min_revision)  # session_key, inlined
        if entry is None:
            return None
        held: _CachedSession = entry.value
        now = self._clock.now()
        if now >= held.expires:
            return None  # the database decides: another process may have slid it
        if now >= held.slides:
            return self._valid(digest, held.row, now, entry.revision)
        return ValidSession(held.row, held.expires, entry.revision, held.user_key)

    async def accept(
        self, digest: bytes, row: SessionRow | None, generation: int, revision: str
    ) -> ValidSession:
        """Decide on a session read from the database (``generation`` and ``revision``
        taken from the cache before the read); caches it when valid.

        Raises:
            SessionInvalid: no such session, it expired (it is then deleted), or its user
                may not be logged in.
        """
        if row is None:
            raise SessionInvalid()
        now = self._clock.now()
        if now >= row.last_seen_time + timedelta(seconds=row.lifetime):
            await self.drop(digest)
            raise SessionInvalid()
        if row.user.status is not UserStatus.ACTIVE:
            raise SessionInvalid()
        self._cache.put(
            session_key(digest),
            _CachedSession(row),
            generation=generation,
            revision=revision,
            tags=[("user", row.user.id)],
        )
        return self._valid(digest, row, now, revision)

    def _valid(self, digest: bytes, row: SessionRow, now: datetime, revision: str) -> ValidSession:
        held = _CachedSession(row)
        if now >= held.slides:
            self._touches.session_used(row.id, now)
            held = _CachedSession(dataclasses.replace(row, last_seen_time=now))
            self._cache.replace(session_key(digest), held)
        return ValidSession(held.row, held.expires, revision, held.user_key)

    async def drop(self, digest: bytes) -> None:
        """Delete an expired session: no dead secret is kept around."""

        async def delete(conn: Connection) -> None:
            await session_rows.delete_by_digest(conn, digest)
            await self._notices.publish(conn, Change(sessions=frozenset({digest})))

        await self._database.transaction(delete)

    async def revoke(self, conn: Connection, token: str) -> uuid.UUID:
        """Revoke one session and return its user's id; raises SessionInvalid if unknown."""
        digest = digest_or_invalid(token)
        user_id = await session_rows.delete_by_digest(conn, digest)
        if user_id is None:
            raise SessionInvalid()
        await self._notices.publish(conn, Change(sessions=frozenset({digest})))
        return user_id


def digest_or_invalid(token: str) -> bytes:
    """The stored digest of ``token``; raises SessionInvalid for what cannot be a token."""
    if not token or len(token) > _MAX_TOKEN_LENGTH:
        raise SessionInvalid()
    return token_digest(token)
