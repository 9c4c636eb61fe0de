"""Service keys: what AccessService and AdminService callers present, with a scope."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from hashlib import sha256

from watchword_server.domain.access.changes import Change, ChangeNotices
from watchword_server.domain.access.check_cache import CheckCache
from watchword_server.domain.common.clock import Clock
from watchword_server.model.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    Reason,
)
from watchword_server.model.records import Scope
from watchword_server.security.tokens import token_digest
from watchword_server.storage.check_reads import CheckReads
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import service_keys as key_rows
from watchword_server.storage.touch_writer import TouchWriter

__all__ = [
    "Caller",
    "ClientSubjectMismatch",
    "KeyNameTaken",
    "KeyNotFound",
    "MAX_KEY_NAME_LENGTH",
    "Scope",
    "ScopeInsufficient",
    "ServiceKeyInvalid",
    "ServiceKeyMissing",
    "ServiceKeys",
    "require_client_subject",
]

# Recognisable by secret scanners, and cheap to tell from a session token.
KEY_PREFIX = "wwk_"
_MAX_KEY_LENGTH = 256
# last_used_time is bookkeeping, not a security control: write it at most this often.
_TOUCH_EVERY_SECONDS = 60.0

MAX_KEY_NAME_LENGTH = 128
"""The longest key name: it goes into every event its caller causes ("admin:<name>")."""

_MAX_CLIENT_SUBJECT_LENGTH = 1024


@dataclass(frozen=True)
class Caller:
    """The service behind a call, as its key identifies it."""

    name: str
    scope: Scope
    key_id: uuid.UUID
    # The verified client certificate subject the key is bound to; None: any client.
    client_subject: str | None = None


class ServiceKeyMissing(DomainError):
    """The call carries no ``authorization: Bearer <key>``."""

    reason = Reason.SERVICE_KEY_MISSING
    message_key = "service_key_missing"


class ServiceKeyInvalid(DomainError):
    """The key is unknown or revoked."""

    reason = Reason.SERVICE_KEY_INVALID
    message_key = "service_key_invalid"


class ScopeInsufficient(DomainError):
    """The key is valid but its scope does not cover this service."""

    reason = Reason.SCOPE_INSUFFICIENT
    message_key = "scope_insufficient"


class ClientSubjectMismatch(DomainError):
    """The key is bound to a client certificate subject that the call's verified client
    certificate does not have (or the call has none)."""

    reason = Reason.SERVICE_KEY_INVALID
    message_key = "service_key_subject_mismatch"


def require_client_subject(caller: Caller, subject: str | None) -> Caller:
    """``caller``, if its key is unbound or bound to ``subject`` (the subject of the call's
    verified client certificate, None without one).

    Raises:
        ClientSubjectMismatch: the key is bound to another subject, or the call has none.
    """
    if caller.client_subject is not None and caller.client_subject != subject:
        raise ClientSubjectMismatch()
    return caller


class KeyNameTaken(Exception):
    """A key with this name exists already."""


class KeyNotFound(Exception):
    """No key has this name."""


class ServiceKeys:
    """Creates, lists, revokes and checks service keys."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        reads: CheckReads,
        cache: CheckCache,
        notices: ChangeNotices,
        touches: TouchWriter,
    ) -> None:
        self._database = database
        self._clock = clock
        self._reads = reads
        self._cache = cache
        self._notices = notices
        self._touches = touches
        # By the key's digest (hashed in C, where a UUID's hash is a Python call).
        self._touch_due: dict[bytes, float] = {}

    async def create(self, name: str, scope: Scope, *, client_subject: str | None = None) -> str:
        """Create a key and return its secret: the only time it is ever seen.

        With ``client_subject`` (a certificate subject as RFC 4514 writes it, e.g.
        ``CN=billing,O=Example``) the key is accepted only on calls whose verified client
        certificate has exactly that subject, which needs a server with mutual TLS.
        """
        if client_subject is not None and not _is_subject(client_subject):
            raise InvalidArgument(
                [
                    FieldViolation(
                        "client_subject",
                        "a certificate subject such as CN=billing,O=Example (RFC 4514), of "
                        f"at most {_MAX_CLIENT_SUBJECT_LENGTH} printable characters",
                    )
                ]
            )
        if not name or len(name) > MAX_KEY_NAME_LENGTH or not name.isprintable():
            raise InvalidArgument(
                [
                    FieldViolation(
                        "name", f"a printable name of at most {MAX_KEY_NAME_LENGTH} characters"
                    )
                ]
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)

        async def insert(conn: Connection) -> None:
            try:
                await key_rows.insert_key(
                    conn,
                    name=name,
                    scope=scope.value,
                    key_digest=token_digest(secret),
                    now=self._clock.now(),
                    client_subject=client_subject,
                )
            except key_rows.DuplicateKeyName as error:
                raise KeyNameTaken(name) from error

        await self._database.transaction(insert)
        return secret

    async def list(self) -> list[key_rows.ServiceKeyRow]:
        """Every key (never a secret)."""
        async with self._database.connect() as conn:
            return await key_rows.list_keys(conn)

    async def revoke(self, name: str) -> None:
        """Delete a key at once; raises KeyNotFound if there is none of that name."""

        async def delete(conn: Connection) -> None:
            key_id = await key_rows.delete_by_name(conn, name)
            if key_id is None:
                raise KeyNotFound(name)
            await self._notices.publish(conn, Change(keys=frozenset({key_id})))

        await self._database.transaction(delete)

    def known(self, authorization: str | None, required: Scope) -> Caller | None:
        """The caller if its key is in the cache, without a suspension (the hot path).

        None means the cache cannot tell: ``authenticate`` decides, and says why a key is
        refused. A cached key whose scope is too small raises ScopeInsufficient here.
        """
        # The header as clients send it is read without _bearer_digest's general parse.
        if authorization is not None and authorization.startswith("Bearer "):
            secret = authorization[7:].strip()
            if not secret or len(secret) > _MAX_KEY_LENGTH:
                return None
            # token_digest inlined (tests/e2e/test_hot_path.py fails if the two part).
            digest = sha256(secret.encode()).digest()
        else:
            try:
                digest = _bearer_digest(authorization)
            except (ServiceKeyMissing, ServiceKeyInvalid):
                return None
        entry = self._cache.get(("service_key", digest))
        if entry is None:
            return None
        caller: Caller = entry.value
        # The commonest case, without _admit's call: nothing to write, nothing to ask.
        if required is Scope.ACCESS and time.monotonic() < self._touch_due.get(digest, 0.0):
            return caller
        return self._admit(caller, required, digest)

    async def authenticate(self, authorization: str | None, required: Scope) -> Caller:
        """Check ``authorization`` metadata (``Bearer <key>``) against ``required``.

        Raises:
            ServiceKeyMissing: no bearer key was given.
            ServiceKeyInvalid: the key is unknown or revoked.
            ScopeInsufficient: the key's scope does not cover ``required``.
        """
        digest = _bearer_digest(authorization)
        key = ("service_key", digest)
        entry = self._cache.get(key)
        if entry is not None:
            return self._admit(entry.value, required, digest)
        generation, revision = self._cache.generation, self._cache.revision
        row = await self._reads.service_key(digest)
        if row is None:
            raise ServiceKeyInvalid()
        caller = Caller(
            name=row.name, scope=Scope(row.scope), key_id=row.id, client_subject=row.client_subject
        )
        self._cache.put(
            key, caller, generation=generation, revision=revision, tags=[("key", row.id)]
        )
        return self._admit(caller, required, digest)

    def _admit(self, caller: Caller, required: Scope, digest: bytes) -> Caller:
        # Bookkeeping, not a security control: at most once a minute per key (timed on the
        # monotonic clock, cheap on every call), written in the background, batched.
        tick = time.monotonic()
        if tick >= self._touch_due.get(digest, 0.0):
            self._touch_due[digest] = tick + _TOUCH_EVERY_SECONDS
            self._touches.key_used(caller.key_id, self._clock.now())
        # Every key may call what requires ACCESS: only ADMIN needs asking (spares a call).
        if required is not Scope.ACCESS and not caller.scope.includes(required):
            raise ScopeInsufficient()
        return caller


def _is_subject(subject: str) -> bool:
    # Compared as written with what gRPC reports: surrounding blanks would never match.
    return (
        0 < len(subject) <= _MAX_CLIENT_SUBJECT_LENGTH
        and subject.isprintable()
        and subject == subject.strip()
        and "=" in subject
    )


def _bearer_digest(authorization: str | None) -> bytes:
    """The digest of the key in ``Bearer <key>``.

    Raises:
        ServiceKeyMissing: no bearer key was given.
        ServiceKeyInvalid: longer than any key this service issues.
    """
    scheme, _, secret = (authorization or "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise ServiceKeyMissing()
    if len(secret) > _MAX_KEY_LENGTH:
        raise ServiceKeyInvalid()
    return token_digest(secret)
