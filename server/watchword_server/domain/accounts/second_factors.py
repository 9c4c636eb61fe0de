"""The TOTP second factor and its recovery codes: enrolment, confirmation, disabling,
new recovery codes, and the second step of a login.

A correct password of a user with a confirmed TOTP opens no session: it gets a challenge
(a random token, stored as a digest, single use, expiring after
``second_factor_challenge_ttl``) that ``complete`` turns into the session with a code.
Every code check takes its place among the address's login failures first, as a password
check does (``domain/accounts/throttle.py``): a wrong code is a failure like a wrong
password, and a correct password does not clear the count of a user who still has to give
the second factor (or the password would buy unlimited code guesses). The TOTP secret is
kept sealed under the pepper (``security/secret_box.py``), sealed again under the current
pepper whenever a code is accepted under a retired one.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from watchword_server.domain.accounts.login_states import STATE_ERRORS
from watchword_server.domain.accounts.services import AccountFlow, AccountServices
from watchword_server.domain.common.validation import Violations
from watchword_server.model.errors import (
    DomainError,
    InvalidArgument,
    InvalidCredentials,
    PasswordIncorrect,
    SecondFactorInvalid,
    SessionInvalid,
    TotpAlreadyEnabled,
    TotpNotEnabled,
)
from watchword_server.model.records import (
    CallContext,
    EventKind,
    SecondFactorMethod,
    SessionGrant,
    UserRecord,
)
from watchword_server.security import one_time_codes
from watchword_server.security.secret_box import SealedSecret, SecretBox
from watchword_server.security.tokens import new_token, token_digest
from watchword_server.storage.db import Connection
from watchword_server.storage.logins import Attempt
from watchword_server.storage.repositories import login_failures as failure_rows
from watchword_server.storage.repositories import second_factors as factor_rows
from watchword_server.storage.repositories import users as user_rows

__all__ = ["Enrollment", "PendingSecondFactor", "SecondFactors", "credential_digest"]

_log = logging.getLogger(__name__)

_Work = Callable[[Connection], Awaitable[None]]
# Longer input is no code or challenge of ours: refused before it is hashed.
_MAX_CODE_LENGTH = 64
_MAX_CHALLENGE_LENGTH = 256


def credential_digest(password_hash: str) -> bytes:
    """What a challenge keeps of the password hash it was issued against."""
    return hashlib.sha256(password_hash.encode()).digest()


@dataclass(frozen=True)
class PendingSecondFactor:
    """A login that waits for its second factor: the challenge to complete it with."""

    challenge: str
    expire_time: datetime
    methods: tuple[SecondFactorMethod, ...]


@dataclass(frozen=True)
class Enrollment:
    """A new, unconfirmed TOTP secret and its otpauth:// URI."""

    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class _Proof:
    """A second factor found right, to spend in the write: a TOTP step (and the secret
    sealed again, when its pepper is retired), or a recovery code's digest."""

    step: int | None = None
    reseal: SealedSecret | None = None
    recovery_digest: bytes | None = None


class SecondFactors(AccountFlow):
    """EnrollTotp, ConfirmTotp, DisableTotp, RegenerateRecoveryCodes, and the second step
    of a login (``challenge`` after the password, ``complete`` with the code)."""

    def __init__(self, services: AccountServices, box: SecretBox) -> None:
        self._box = box
        super().__init__(services)

    # The login's second step.

    async def challenge(
        self,
        *,
        user: UserRecord,
        password_hash: str,
        new_hash: str | None,
        remember: bool,
        attempt: Attempt | None,
        call: CallContext,
    ) -> PendingSecondFactor:
        """Answer a correct password of a user with a second factor: a challenge, no session.

        The attempt's place among the failures is given back (the password was no guess),
        but the address's earlier failures stay: only the second factor clears them.
        """
        token = new_token()
        now = self._clock.now()
        expire_time = now + timedelta(seconds=self._settings.second_factor_challenge_ttl)

        async def issue(conn: Connection) -> PendingSecondFactor:
            current = await user_rows.lock_login_state(conn, user.id)
            if current is None or current[1] != password_hash:
                raise InvalidCredentials()  # reset or changed meanwhile
            state_error = STATE_ERRORS.get(current[0])
            if state_error is not None:
                raise state_error()
            checked = password_hash
            if new_hash is not None and await user_rows.set_password_hash(
                conn, user.id, new_hash, expected_old=password_hash
            ):
                checked = new_hash
            await factor_rows.insert_challenge(
                conn,
                user_id=user.id,
                challenge_digest=token_digest(token),
                credential_digest=credential_digest(checked),
                remember=remember,
                client_ip=call.client_ip,
                now=now,
                expire_time=expire_time,
            )
            methods = [SecondFactorMethod.TOTP]
            if await factor_rows.unused_recovery_codes(conn, user.id):
                methods.append(SecondFactorMethod.RECOVERY_CODE)
            if attempt is not None and attempt.reserved is not None:
                await failure_rows.release(conn, attempt.reserved)
            await self._events.record(conn, EventKind.SECOND_FACTOR_REQUIRED, call, user=user)
            return PendingSecondFactor(token, expire_time, tuple(methods))

        try:
            return await self._database.transaction(issue)
        except DomainError:
            await self._logins.release(attempt)
            raise

    async def complete(
        self,
        *,
        challenge: str,
        totp_code: str | None,
        recovery_code: str | None,
        call: CallContext,
    ) -> tuple[UserRecord, SessionGrant]:
        """Open the session a challenge waits for, with a TOTP code or a recovery code.

        Raises:
            InvalidArgument: the challenge or the code is missing.
            SecondFactorInvalid: the challenge is unknown, used or expired, or the code is
                wrong or replayed (a failure toward the login throttle).
            TooManyAttempts: the address or client is past the throttle's limits.
        """
        problems = Violations()
        problems.required("challenge", challenge)
        if totp_code is not None:
            field, code = "totp_code", totp_code
        elif recovery_code is not None:
            field, code = "recovery_code", recovery_code
        else:
            field, code = "totp_code", ""
        if not code:
            problems.add(field, "a TOTP code or a recovery code is required")
        if problems:
            raise InvalidArgument(problems.items)
        if len(challenge) > _MAX_CHALLENGE_LENGTH or len(code) > _MAX_CODE_LENGTH:
            raise SecondFactorInvalid()
        digest = token_digest(challenge)
        now = self._clock.now()
        async with self._database.connect() as conn:
            found = await factor_rows.find_challenge(conn, digest, now)
            user = None if found is None else await user_rows.get(conn, found.user_id)
        if found is None or user is None:
            # 256 random bits: nothing to guess, but worth a line in the audit log.
            await self._database.transaction(
                lambda conn: self._events.record(conn, EventKind.SECOND_FACTOR_FAILED, call)
            )
            raise SecondFactorInvalid()
        attempt = await self._reserve(user, call)
        try:
            async with self._database.connect() as conn:
                if totp_code is not None:
                    stored = await factor_rows.get_totp(conn, user.id)
                    confirmed = stored if stored is not None and stored.confirmed else None
                    proof = self._totp_proof(user, confirmed, totp_code, now)
                else:
                    proof = await self._recovery_proof(conn, user, code)
        except DomainError:
            await self._logins.release(attempt)
            raise
        if proof is None:
            await self._failed(user, call, attempt)
            raise SecondFactorInvalid()

        async def finish(conn: Connection) -> SessionGrant:
            # The account's row first, as every writer of its factors locks it first.
            current = await user_rows.lock_login_state(conn, user.id)
            if not await factor_rows.consume_challenge(conn, found.id):
                raise SecondFactorInvalid()  # completed meanwhile by another call
            if current is None or credential_digest(current[1]) != found.credential_digest:
                raise SecondFactorInvalid()  # the password changed since the challenge
            state_error = STATE_ERRORS.get(current[0])
            if state_error is not None:
                raise state_error()
            await self._spend(conn, user.id, proof, now)
            session = await self._sessions.create(
                conn, user, remember=found.remember, client_ip=call.client_ip
            )
            forget = self._throttle.to_forget(user.email, attempt)
            if forget is not None:
                await failure_rows.forget(conn, email_key=forget)
            if attempt is not None and attempt.reserved is not None:
                await failure_rows.release(conn, attempt.reserved)
            if proof.recovery_digest is not None:
                await self._events.record(conn, EventKind.RECOVERY_CODE_USED, call, user=user)
            await self._events.record(conn, EventKind.LOGIN, call, user=user)
            return session

        try:
            session = await self._database.transaction(finish)
        except DomainError:
            await self._logins.release(attempt)
            raise
        return user, session

    # The logged-in user's own settings.

    async def enroll(self, *, session_token: str, call: CallContext) -> Enrollment:
        """A new TOTP secret for the session's user, not in effect until confirmed."""
        user = (await self._sessions.introspect(session_token, cached=False)).user
        secret = one_time_codes.new_totp_secret()
        sealed = self._box.seal(secret, user.id.bytes)

        async def store(conn: Connection) -> None:
            await _lock_account(conn, user.id)
            current = await factor_rows.get_totp(conn, user.id, lock=True)
            if current is not None and current.confirmed:
                raise TotpAlreadyEnabled()
            await factor_rows.upsert_totp(
                conn,
                user.id,
                sealed_secret=sealed.blob,
                key_id=sealed.key_id,
                now=self._clock.now(),
            )
            await self._events.record(conn, EventKind.TOTP_ENROLLMENT_STARTED, call, user=user)

        await self._database.transaction(store)
        uri = one_time_codes.otpauth_uri(
            secret, account=user.email, issuer=self._settings.totp_issuer
        )
        return Enrollment(secret, uri)

    async def confirm(self, *, session_token: str, code: str, call: CallContext) -> list[str]:
        """Turn the enrolled TOTP on with a first code; returns the new recovery codes."""
        _require_code("code", code)
        user = (await self._sessions.introspect(session_token, cached=False)).user
        now = self._clock.now()
        attempt = await self._reserve(user, call)
        try:
            async with self._database.connect() as conn:
                stored = await factor_rows.get_totp(conn, user.id)
                if stored is None:
                    raise TotpNotEnabled()
                if stored.confirmed:
                    raise TotpAlreadyEnabled()
                proof = self._totp_proof(user, stored, code, now)
        except DomainError:
            await self._logins.release(attempt)
            raise
        if proof is None:
            await self._failed(user, call, attempt)
            raise SecondFactorInvalid()
        codes = self._new_recovery_codes()

        async def turn_on(conn: Connection) -> None:
            await _lock_account(conn, user.id)
            await self._spend(conn, user.id, proof, now, confirm=True)
            await factor_rows.replace_recovery_codes(
                conn, user.id, [_code_digest(c) for c in codes], now
            )
            await self._give_back(conn, attempt)
            await self._events.record(conn, EventKind.TOTP_ENABLED, call, user=user)

        await self._transaction_releasing(turn_on, attempt)
        return codes

    async def disable(
        self,
        *,
        session_token: str,
        code: str | None,
        password: str | None,
        call: CallContext,
    ) -> None:
        """Turn TOTP off (with a current code or the password) and void the recovery codes."""
        if code is not None:
            _require_code("code", code)
        else:
            problems = Violations()
            if password is None:
                problems.add("code", "a TOTP code or the password is required")
            else:
                problems.required("password", password)
            if problems:
                raise InvalidArgument(problems.items)
        user = (await self._sessions.introspect(session_token, cached=False)).user
        now = self._clock.now()
        attempt = await self._reserve(user, call)
        try:
            async with self._database.connect() as conn:
                stored = await factor_rows.get_totp(conn, user.id)
                stored_hash = await user_rows.password_hash_of(conn, user.id)
            if stored is None:
                raise TotpNotEnabled()
            if stored_hash is None:
                raise SessionInvalid()
            if code is not None:
                proof = self._totp_proof(user, stored, code, now)
            elif await self._hasher.verify(password or "", stored_hash):
                proof = _Proof()
            else:
                proof = None
        except DomainError:
            await self._logins.release(attempt)
            raise
        if proof is None:
            # A wrong password gets no event, as in ChangePassword; it counts all the same.
            await self._failed(user, call, attempt, event=code is not None)
            raise SecondFactorInvalid() if code is not None else PasswordIncorrect("password")

        async def turn_off(conn: Connection) -> None:
            await _lock_account(conn, user.id)
            if code is not None:
                await self._spend(conn, user.id, proof, now)
            if not await factor_rows.delete_totp(conn, user.id):
                raise TotpNotEnabled()
            await factor_rows.delete_challenges_for_user(conn, user.id)
            await self._give_back(conn, attempt)
            await self._events.record(conn, EventKind.TOTP_DISABLED, call, user=user)

        await self._transaction_releasing(turn_off, attempt)

    async def regenerate(self, *, session_token: str, code: str, call: CallContext) -> list[str]:
        """A new set of recovery codes (with a current code); the old set stops working."""
        _require_code("code", code)
        user = (await self._sessions.introspect(session_token, cached=False)).user
        now = self._clock.now()
        attempt = await self._reserve(user, call)
        try:
            async with self._database.connect() as conn:
                stored = await factor_rows.get_totp(conn, user.id)
                if stored is None or not stored.confirmed:
                    raise TotpNotEnabled()
                proof = self._totp_proof(user, stored, code, now)
        except DomainError:
            await self._logins.release(attempt)
            raise
        if proof is None:
            await self._failed(user, call, attempt)
            raise SecondFactorInvalid()
        codes = self._new_recovery_codes()

        async def replace(conn: Connection) -> None:
            await _lock_account(conn, user.id)
            await self._spend(conn, user.id, proof, now)
            await factor_rows.replace_recovery_codes(
                conn, user.id, [_code_digest(c) for c in codes], now
            )
            await self._give_back(conn, attempt)
            await self._events.record(conn, EventKind.RECOVERY_CODES_REGENERATED, call, user=user)

        await self._transaction_releasing(replace, attempt)
        return codes

    # Shared steps.

    def _new_recovery_codes(self) -> list[str]:
        return [
            one_time_codes.new_recovery_code() for _ in range(self._settings.recovery_code_count)
        ]

    async def _reserve(self, user: UserRecord, call: CallContext) -> Attempt | None:
        # A code check takes its place among the address's failures, as a password check.
        failures = self._throttle.query(user.email, call.client_ip)
        attempt = None if failures is None else await self._logins.reserve(failures)
        self._throttle.refuse_unless_reserved(attempt)
        return attempt

    async def _failed(
        self, user: UserRecord, call: CallContext, attempt: Attempt | None, *, event: bool = True
    ) -> None:
        async def record(conn: Connection) -> None:
            await self._throttle.failed(conn, user.email, call.client_ip, attempt)
            if event:
                await self._events.record(conn, EventKind.SECOND_FACTOR_FAILED, call, user=user)

        await self._database.transaction(record)

    @staticmethod
    async def _give_back(conn: Connection, attempt: Attempt | None) -> None:
        if attempt is not None and attempt.reserved is not None:
            await failure_rows.release(conn, attempt.reserved)

    async def _transaction_releasing(self, work: _Work, attempt: Attempt | None) -> None:
        try:
            await self._database.transaction(work)
        except DomainError:
            await self._logins.release(attempt)
            raise

    def _totp_proof(
        self, user: UserRecord, stored: factor_rows.StoredTotp | None, code: str, now: datetime
    ) -> _Proof | None:
        if stored is None:
            return None
        sealed = SealedSecret(stored.key_id, stored.sealed_secret)
        secret = self._box.open(sealed, user.id.bytes)
        if secret is None:
            # Its pepper left the key ring (or the row was tampered with): recovery codes
            # or an administrator's reset are the way back in.
            _log.warning("the TOTP secret of user %s cannot be opened", user.id)
            return None
        step = one_time_codes.matching_step(secret, code, now, after=stored.last_used_step)
        if step is None:
            return None
        reseal = self._box.seal(secret, user.id.bytes) if self._box.needs_reseal(sealed) else None
        return _Proof(step=step, reseal=reseal)

    async def _recovery_proof(self, conn: Connection, user: UserRecord, code: str) -> _Proof | None:
        digest = _code_digest(code)
        if not await factor_rows.has_unused_recovery_code(conn, user.id, digest):
            return None
        return _Proof(recovery_digest=digest)

    @staticmethod
    async def _spend(
        conn: Connection, user_id: uuid.UUID, proof: _Proof, now: datetime, *, confirm: bool = False
    ) -> None:
        # Conditional writes: of two calls with the same code, exactly one gets through.
        if proof.step is not None:
            reseal = None if proof.reseal is None else (proof.reseal.blob, proof.reseal.key_id)
            used = await factor_rows.use_totp_step(
                conn, user_id, proof.step, confirm_at=now if confirm else None, reseal=reseal
            )
        elif proof.recovery_digest is not None:
            used = await factor_rows.use_recovery_code(conn, user_id, proof.recovery_digest, now)
        else:
            return
        if not used:
            raise SecondFactorInvalid()


async def _lock_account(conn: Connection, user_id: uuid.UUID) -> None:
    # Every write of a user's factors locks the account's row first (a completing login
    # too), so two of them never wait on each other's rows in opposite orders.
    if await user_rows.get(conn, user_id, lock=True) is None:
        raise SessionInvalid()


def _require_code(field: str, code: str) -> None:
    problems = Violations()
    problems.required(field, code)
    if problems:
        raise InvalidArgument(problems.items)


def _code_digest(code: str) -> bytes:
    return token_digest(one_time_codes.normal_recovery_code(code))
