"""A login's two database visits: the read before the password check, and the write after.

With throttling on, the read also takes the attempt's place among the failures, under a
lock (see ``repositories/login_failures.py``): three statements in one transaction, between
the lock's taking and giving back, all in one round trip.

On PostgreSQL each visit is one request on the ``PreparedPool`` (as the checks are): a
login's bookkeeping through SQLAlchemy cost ~5 ms of CPU here (two pool checkouts with
pre-ping, BEGIN, four statements, COMMIT), twice the hash it wraps. The write is a single
statement whose parts (re-check under a row lock, rehash, session, forgotten failures,
audit event and its notification) all happen only if the locked row still allows the
login, so it is atomic on its own. On SQLite the same steps run in one transaction (and
none can lose to another: SQLite's writers take turns from BEGIN on).

The write's commit does not wait for the WAL flush (``synchronous_commit = off`` for that
statement's transaction alone). A crash of the database server may lose such a login
whole, never in part: the user logs in again (the token stops working), the audit log lacks
a login whose session is gone with it, forgotten failures count again, a rehash waits for
the next login. Failed attempts are written elsewhere, durably: losing those would give a
guesser tries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watchword_server.model.email_addresses import email_key
from watchword_server.model.records import EventKind, UserStatus
from watchword_server.storage.check_reads import user_record
from watchword_server.storage.db import Database
from watchword_server.storage.models import Event, LoginFailure, Session, User
from watchword_server.storage.pg_prepared import PgStatement, PreparedPool, compile_statement
from watchword_server.storage.repositories import events as event_rows
from watchword_server.storage.repositories import login_failures as failure_rows
from watchword_server.storage.repositories import sessions as session_rows
from watchword_server.storage.repositories import users as user_rows

__all__ = ["PG_STATEMENTS", "Attempt", "LoginWrite", "Logins"]


@dataclass(frozen=True)
class Attempt:
    """A password check's standing with the throttle: the failures counted before it, and
    the failure row it holds (None: a limit was reached and nothing was written)."""

    recent: failure_rows.Recent
    reserved: int | None


@dataclass(frozen=True)
class LoginWrite:
    """What a correct password leads to, if the account still allows it."""

    user_id: uuid.UUID
    expected_hash: str  # the hash the password was checked against
    new_hash: str | None  # a rehash to store, if any
    session_id: uuid.UUID
    token_digest: bytes
    lifetime: int
    remember: bool
    client_ip: str
    now: datetime
    forget_email_key: bytes | None  # whose failures to clear, if any
    release: int | None  # the failure row the attempt holds, to give back
    event_description: str | None  # None: no event (log_events is off)
    origin: str


def _shape(by_email: bool, by_client: bool) -> str:
    return f"{int(by_email)}{int(by_client)}"


_SHAPES = [(by_email, by_client) for by_email in (False, True) for by_client in (False, True)]
_READS = {
    _shape(*shape): compile_statement(
        f"watchword_login_read_{_shape(*shape)}", user_rows.login_read_statement(*shape)
    )
    for shape in _SHAPES
}
_COUNTS = {
    _shape(*shape): compile_statement(
        f"watchword_login_counts_{_shape(*shape)}", failure_rows.counts_statement(*shape)
    )
    for shape in _SHAPES
}
_RESERVES = {
    _shape(*shape): compile_statement(
        f"watchword_login_reserve_{_shape(*shape)}", failure_rows.reserve_statement(*shape)
    )
    for shape in _SHAPES
}
_LOCK = compile_statement("watchword_login_lock", failure_rows.lock_statement())
_UNLOCK = compile_statement("watchword_login_unlock", failure_rows.unlock_statement())
_LOCKED = compile_statement("watchword_login_locked", failure_rows.locked_statement())
_FIND = compile_statement("watchword_login_find", user_rows.login_find_statement())

_WRITE_PARAMETERS = (
    "user_id",
    "expected_hash",
    "new_hash",
    "session_id",
    "token_digest",
    "lifetime",
    "remember",
    "client_ip",
    "now",
    "forget_email_key",
    "event_description",
    "origin",
    "log_event",
    "kind",
    "active",
    "release",
)
# Data-modifying WITH parts always run, each writing only FROM "accepted", which is empty
# unless the row locked FOR UPDATE still has the checked hash and an active status. The
# notification is sent at commit, like every event's.
_WRITE_SQL = f"""
WITH durability AS (SELECT set_config('synchronous_commit', 'off', true) AS off),
locked AS (
  SELECT id, status, password_hash FROM {User.__tablename__} WHERE id = $1::uuid FOR UPDATE
),
accepted AS (
  SELECT id FROM locked WHERE password_hash = $2::text AND status = $15::text
),
rehashed AS (
  UPDATE {User.__tablename__} SET password_hash = $3::text FROM accepted
  WHERE {User.__tablename__}.id = accepted.id AND $3::text IS NOT NULL
    AND {User.__tablename__}.password_hash = $2::text
  RETURNING 1
),
opened AS (
  INSERT INTO {Session.__tablename__}
    (id, user_id, token_digest, lifetime, remember, client_ip, create_time, last_seen_time)
  SELECT $4::uuid, id, $5::bytea, $6::int, $7::bool, $8::text, $9::timestamptz,
         $9::timestamptz
  FROM accepted
  RETURNING 1
),
forgotten AS (
  DELETE FROM {LoginFailure.__tablename__}
  WHERE (($10::bytea IS NOT NULL AND email_key = $10::bytea) OR id = $16::bigint)
    AND EXISTS (SELECT FROM accepted)
  RETURNING 1
),
logged AS (
  INSERT INTO {Event.__tablename__} (kind, user_id, description, client_ip, origin, create_time)
  SELECT $14::text, id, $11::text, $8::text, $12::text, $9::timestamptz FROM accepted
  WHERE $13::bool
  RETURNING id
)
SELECT (SELECT status FROM locked), (SELECT password_hash FROM locked),
       (SELECT count(*) FROM opened), (SELECT max(off) FROM durability),
       (SELECT count(*) FROM rehashed), (SELECT count(*) FROM forgotten),
       (SELECT pg_notify('{event_rows.NOTIFY_CHANNEL}', id::text) FROM logged)
"""  # noqa: S608 - table names and a channel of ours, values are parameters
_WRITE = PgStatement("watchword_login_write", _WRITE_SQL, _WRITE_PARAMETERS, {})

PG_STATEMENTS: Sequence[PgStatement] = (
    *_READS.values(),
    *_COUNTS.values(),
    *_RESERVES.values(),
    _LOCK,
    _UNLOCK,
    _LOCKED,
    _FIND,
    _WRITE,
)
"""What the PreparedPool must hold for ``Logins``."""


class Logins:
    """A login's read and write: prepared statements on ``pool`` on PostgreSQL, the engine
    on SQLite."""

    def __init__(self, database: Database, pool: PreparedPool | None) -> None:
        self._database = database
        self._pool = pool
        # SQLite (one process) has no advisory locks: reservations queue here instead.
        self._reserving = asyncio.Lock()

    async def read(
        self, email: str, failures: failure_rows.RecentQuery | None
    ) -> tuple[user_rows.StoredUser | None, Attempt | None]:
        """The account with ``email`` and, if ``failures`` is given, the attempt's standing
        with the throttle (its place reserved when ``failures`` names one)."""
        if failures is None:
            if self._pool is None:
                async with self._database.connect() as conn:
                    return await user_rows.find_by_email(conn, email), None
            row = await self._pool.fetch_one(_FIND, {"email": email_key(email)})
            return (None if row is None else _stored(row, 0)), None
        if self._pool is None:
            async with self._reserving, self._database.begin() as conn:
                stored = await user_rows.find_by_email(conn, email)
                if failures.attempt is None:
                    return stored, Attempt(await failure_rows.recent(conn, failures), None)
                return stored, Attempt(*await failure_rows.reserve(conn, failures))
        shape = _shape(failures.email_key is not None, bool(failures.client_ip))
        values = {**failure_rows.recent_parameters(failures), "email": email_key(email)}
        if failures.attempt is None:
            found = await self._pool.fetch_one(_READS[shape], values)
            reserved: list[tuple[Any, ...]] = []
        else:
            _, (found, *_), reserved = await self._pool.transaction(
                [
                    (_LOCKED, {}),
                    (_READS[shape], values),
                    (_RESERVES[shape], {**values, **failure_rows.reserve_parameters(failures)}),
                ],
                holding=_locks(failures),
            )
        if found is None:  # the counts make one row, with a user or without
            raise RuntimeError("the login read returned no row")
        attempt = Attempt(failure_rows.recent_of(found[:4]), _reserved(reserved))
        return (None if found[4] is None else _stored(found, 4)), attempt

    async def reserve(self, failures: failure_rows.RecentQuery) -> Attempt:
        """The attempt's standing with the throttle, its place reserved (``read`` without
        the account, for checks of a password other than a login's)."""
        if self._pool is None:
            async with self._reserving, self._database.begin() as conn:
                return Attempt(*await failure_rows.reserve(conn, failures))
        shape = _shape(failures.email_key is not None, bool(failures.client_ip))
        _, (counts, *_), reserved = await self._pool.transaction(
            [
                (_LOCKED, {}),
                (_COUNTS[shape], failure_rows.recent_parameters(failures)),
                (_RESERVES[shape], failure_rows.reserve_parameters(failures)),
            ],
            holding=_locks(failures),
        )
        return Attempt(failure_rows.recent_of(counts), _reserved(reserved))

    async def release(self, attempt: Attempt | None) -> None:
        """Give back the attempt's place: its check was no failure (or was not made)."""
        if attempt is None or attempt.reserved is None:
            return
        reserved = attempt.reserved
        await self._database.transaction(lambda conn: failure_rows.release(conn, reserved))

    async def finish(self, write: LoginWrite) -> tuple[UserStatus, str] | None:
        """Write the login if the account still has ``write.expected_hash`` and is active.

        Returns the account's status and hash as locked (None if it is gone), whatever was
        written: the caller decides on them as the write did.
        """
        if self._pool is not None:
            row = await self._pool.fetch_one(_WRITE, _write_values(write))
            if row is None or row[0] is None:
                return None
            return UserStatus(row[0]), str(row[1])
        async with self._database.begin() as conn:
            current = await user_rows.lock_login_state(conn, write.user_id)
            if current is None:
                return None
            if current[1] != write.expected_hash or current[0] is not UserStatus.ACTIVE:
                return current
            if write.new_hash is not None:
                await user_rows.set_password_hash(
                    conn, write.user_id, write.new_hash, expected_old=write.expected_hash
                )
            await session_rows.insert_session(
                conn,
                user_id=write.user_id,
                token_digest=write.token_digest,
                lifetime=write.lifetime,
                remember=write.remember,
                client_ip=write.client_ip,
                now=write.now,
                session_id=write.session_id,
            )
            if write.forget_email_key is not None:
                await failure_rows.forget(conn, email_key=write.forget_email_key)
            if write.release is not None:
                await failure_rows.release(conn, write.release)
            if write.event_description is not None:
                await event_rows.insert_event(
                    conn,
                    kind=EventKind.LOGIN,
                    user_id=write.user_id,
                    description=write.event_description,
                    client_ip=write.client_ip,
                    origin=write.origin,
                    now=write.now,
                )
            return current


def _locks(
    failures: failure_rows.RecentQuery,
) -> tuple[tuple[PgStatement, dict[str, Any]], tuple[PgStatement, dict[str, Any]]]:
    parameters = failure_rows.lock_parameters(failures)
    return (_LOCK, parameters), (_UNLOCK, parameters)


def _reserved(rows: Sequence[tuple[Any, ...]]) -> int | None:
    return int(rows[0][0]) if rows else None


def _stored(row: Sequence[Any], offset: int) -> user_rows.StoredUser:
    return user_rows.StoredUser(
        record=user_record(row, offset),
        password_hash=str(row[offset + 9]),
        second_factor=bool(row[offset + 10]),
    )


def _write_values(write: LoginWrite) -> dict[str, Any]:
    return {
        "user_id": write.user_id,
        "expected_hash": write.expected_hash,
        "new_hash": write.new_hash,
        "session_id": write.session_id,
        "token_digest": write.token_digest,
        "lifetime": write.lifetime,
        "remember": write.remember,
        "client_ip": write.client_ip,
        "now": write.now,
        "forget_email_key": write.forget_email_key,
        "event_description": write.event_description or "",
        "origin": write.origin,
        "log_event": write.event_description is not None,
        "kind": EventKind.LOGIN.value,
        "active": UserStatus.ACTIVE.value,
        "release": write.release,
    }
