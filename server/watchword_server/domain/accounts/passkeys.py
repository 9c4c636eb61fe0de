"""Passkeys (WebAuthn): registration by a logged-in user, and login with a passkey alone.

Every ceremony has a random challenge, stored as a digest with what it is for (and whom),
answered once: taking it deletes it, right answer or wrong, and one past
``webauthn_challenge_ttl`` is refused. A login's challenge is the ``challenge`` handed to
the caller (base64url), a registration's is found from the credential's client data.

A passkey login is complete on its own (the authenticator verified its user: see
``security/webauthn_ceremonies.py``) and is refused as Authenticate refuses: throttled by
the same counts (the address given, else the credential's owner's, and the client), the
account's state told only after the assertion verified, every failure one event.
"""

from __future__ import annotations

import hmac
import unicodedata
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from watchword_server.domain.accounts.hooks import LoginAttempt, run_hook
from watchword_server.domain.accounts.services import AccountFlow, AccountServices
from watchword_server.domain.common.lookups import parse_id
from watchword_server.domain.common.validation import Violations
from watchword_server.model.errors import (
    AccountBlocked,
    AccountDisabled,
    AccountPendingApproval,
    AccountPendingVerification,
    DomainError,
    FieldViolation,
    HookFailed,
    HookRefused,
    InvalidArgument,
    PasskeyAlreadyRegistered,
    PasskeyNotFound,
    SecondFactorInvalid,
)
from watchword_server.model.records import (
    CallContext,
    EventKind,
    PasskeyRecord,
    SessionGrant,
    UserRecord,
    UserStatus,
)
from watchword_server.security import webauthn_ceremonies as ceremonies
from watchword_server.security.webauthn_ceremonies import RelyingParty
from watchword_server.storage.db import Connection
from watchword_server.storage.logins import Attempt
from watchword_server.storage.repositories import login_failures as failure_rows
from watchword_server.storage.repositories import passkeys as passkey_rows
from watchword_server.storage.repositories import sessions as session_rows
from watchword_server.storage.repositories import users as user_rows

__all__ = ["Passkeys", "relying_party"]

_T = TypeVar("_T")

_REGISTRATION = "registration"
_LOGIN = "login"
MAX_PASSKEY_NAME = 100
# A credential is a few hundred bytes of JSON (attestation certificates a few KiB); refuse
# attacker-sized input before parsing it.
_MAX_CREDENTIAL_JSON = 64 * 1024
_MAX_CHALLENGE = 128

_STATE_ERRORS: dict[UserStatus, type[DomainError]] = {
    UserStatus.PENDING_VERIFICATION: AccountPendingVerification,
    UserStatus.PENDING_APPROVAL: AccountPendingApproval,
    UserStatus.DISABLED: AccountDisabled,
    UserStatus.BLOCKED: AccountBlocked,
}


class _Replayed(Exception):
    """The counter moved on between the check and the write: a concurrent use."""


def relying_party(rp_id: str, rp_name: str, origins: frozenset[str], ttl: int) -> RelyingParty:
    """The relying party of the settings, with a ceremony timeout of the challenge's TTL."""
    return RelyingParty(
        id=rp_id, name=rp_name, origins=tuple(sorted(origins)), timeout_ms=ttl * 1000
    )


class Passkeys(AccountFlow):
    """The six passkey RPCs' rules."""

    def __init__(self, services: AccountServices, party: RelyingParty) -> None:
        super().__init__(services)
        self._party = party
        self._ttl = timedelta(seconds=services.settings.webauthn_challenge_ttl)

    # --- registration ---------------------------------------------------------------

    async def begin_registration(self, *, session_token: str) -> str:
        """The creation options (JSON) for a new passkey of the session's user."""
        user = (await self._sessions.introspect(session_token, cached=False)).user
        challenge = ceremonies.new_challenge()
        now = self._clock.now()

        async def store(conn: Connection) -> list[bytes]:
            await passkey_rows.insert_challenge(
                conn,
                challenge_digest=ceremonies.challenge_digest(challenge),
                purpose=_REGISTRATION,
                user_id=user.id,
                email="",
                now=now,
                expire_time=now + self._ttl,
            )
            return await passkey_rows.credential_ids_of(conn, user.id)

        registered = await self._database.transaction(store)
        display = f"{user.first_name} {user.last_name}".strip() or user.email
        return ceremonies.registration_options(
            self._party,
            challenge=challenge,
            user_handle=user.id.bytes,
            user_name=user.email,
            display_name=display,
            exclude=registered,
        )

    async def finish_registration(
        self, *, session_token: str, credential_json: str, name: str, call: CallContext
    ) -> PasskeyRecord:
        """Verify the new credential against the user's open challenge and store it.

        Raises:
            InvalidArgument: the name or the credential JSON is missing or malformed.
            SecondFactorInvalid: no open challenge of this user's matches (wrong, used,
                expired), or the credential does not verify.
            PasskeyAlreadyRegistered: the credential is registered already.
        """
        problems = Violations()
        _check_name(problems, name)
        _check_credential(problems, credential_json)
        if problems:
            raise InvalidArgument(problems.items)
        user = (await self._sessions.introspect(session_token, cached=False)).user
        challenge = _or_invalid(ceremonies.registration_challenge, credential_json)
        now = self._clock.now()
        # Taken in a transaction of its own: a wrong answer uses the challenge up too.
        opened = await self._database.transaction(
            lambda conn: passkey_rows.take_challenge(
                conn, ceremonies.challenge_digest(challenge), _REGISTRATION, user_id=user.id
            )
        )
        if opened is None or opened.expire_time <= now:
            raise SecondFactorInvalid("no open registration challenge matches")
        try:
            verified = ceremonies.verify_registration(
                self._party, credential_json, challenge=challenge
            )
        except ceremonies.CeremonyFailed as error:
            raise SecondFactorInvalid(f"registration does not verify: {error}") from None

        async def store(conn: Connection) -> PasskeyRecord:
            try:
                passkey = await passkey_rows.insert_passkey(
                    conn,
                    user_id=user.id,
                    credential_id=verified.credential_id,
                    public_key=verified.public_key,
                    sign_count=verified.sign_count,
                    name=name.strip(),
                    now=self._clock.now(),
                )
            except passkey_rows.CredentialTaken:
                raise PasskeyAlreadyRegistered() from None
            await self._events.record(
                conn, EventKind.PASSKEY_REGISTERED, call, user=user, values={"name": passkey.name}
            )
            return passkey

        return await self._database.transaction(store)

    # --- the user's passkeys ----------------------------------------------------------

    async def list(self, *, session_token: str) -> list[PasskeyRecord]:
        """The session's user's passkeys, oldest first."""
        user = (await self._sessions.introspect(session_token)).user
        async with self._database.connect() as conn:
            return await passkey_rows.list_passkeys(conn, user.id)

    async def delete(self, *, session_token: str, passkey_id: str, call: CallContext) -> None:
        """Delete one of the session's user's passkeys; raises PasskeyNotFound otherwise."""
        user = (await self._sessions.introspect(session_token, cached=False)).user
        wanted = parse_id(passkey_id, PasskeyNotFound)

        async def remove(conn: Connection) -> None:
            removed = await passkey_rows.delete_passkey(conn, user.id, wanted)
            if removed is None:
                raise PasskeyNotFound()
            await self._events.record(
                conn, EventKind.PASSKEY_DELETED, call, user=user, values={"name": removed.name}
            )

        await self._database.transaction(remove)

    # --- login ------------------------------------------------------------------------

    async def begin_login(self, *, email: str) -> tuple[str, str]:
        """A login challenge and its request options (JSON): naming the passkeys of the
        address's user, or none (a discoverable credential) without an address.

        An unknown address gets what an address without passkeys gets, after the same
        reads, and its challenge is stored alike (it can only fail).
        """
        if email:
            problems = Violations()
            problems.login_email("email", email)
            if problems:
                raise InvalidArgument(problems.items)
        challenge = ceremonies.new_challenge()
        now = self._clock.now()

        async def store(conn: Connection) -> list[bytes]:
            user = None
            if email:
                stored = await user_rows.find_by_email(conn, email)
                user = None if stored is None else stored.record
            await passkey_rows.insert_challenge(
                conn,
                challenge_digest=ceremonies.challenge_digest(challenge),
                purpose=_LOGIN,
                user_id=None if user is None else user.id,
                email=email,
                now=now,
                expire_time=now + self._ttl,
            )
            if not email:
                return []
            # An unknown address reads the passkeys of no one: the same query either way.
            return await passkey_rows.credential_ids_of(
                conn, uuid.uuid4() if user is None else user.id
            )

        allowed = await self._database.transaction(store)
        options = ceremonies.login_options(self._party, challenge=challenge, allow=allowed)
        return ceremonies.encode_challenge(challenge), options

    async def finish_login(
        self, *, challenge: str, credential_json: str, remember: bool, call: CallContext
    ) -> tuple[UserRecord, SessionGrant]:
        """Verify the assertion against the challenge and open a session.

        Raises:
            InvalidArgument: the challenge or the credential JSON is missing or malformed.
            TooManyAttempts: the throttle's limits are reached (before any check).
            SecondFactorInvalid: the challenge is wrong, used or expired, the credential is
                unknown, someone else's or the assertion does not verify.
            AccountBlocked, AccountDisabled, AccountPendingApproval,
            AccountPendingVerification: the assertion verified but the account may not log in.
        """
        problems = Violations()
        if problems.required("challenge", challenge) and len(challenge) > _MAX_CHALLENGE:
            problems.add("challenge", "challenge is not one of ours")
        _check_credential(problems, credential_json)
        if problems:
            raise InvalidArgument(problems.items)
        assertion = _or_invalid(ceremonies.parse_assertion, credential_json)
        challenge_bytes = ceremonies.decode_challenge(challenge)
        now = self._clock.now()

        async def take(
            conn: Connection,
        ) -> tuple[
            passkey_rows.OpenChallenge | None, passkey_rows.StoredPasskey | None, UserRecord | None
        ]:
            opened = None
            if challenge_bytes is not None:
                digest = ceremonies.challenge_digest(challenge_bytes)
                opened = await passkey_rows.take_challenge(conn, digest, _LOGIN)
            passkey = await passkey_rows.find_by_credential(conn, assertion.credential_id)
            owner = None if passkey is None else await user_rows.get(conn, passkey.record.user_id)
            return opened, passkey, owner

        # Its own transaction: a challenge is used up by any answer, right or wrong.
        opened, passkey, owner = await self._database.transaction(take)
        # Throttled by the address the ceremony named, else by the credential's owner's.
        email = opened.email if opened is not None and opened.email else ""
        if not email and owner is not None:
            email = owner.email
        query = self._throttle.query(email, call.client_ip)
        attempt = None if query is None else await self._logins.reserve(query)
        self._throttle.refuse_unless_reserved(attempt)

        new_count = None
        if (
            challenge_bytes is not None
            and opened is not None
            and opened.expire_time > now
            and passkey is not None
            and owner is not None
            # After naming an address, only its user's passkeys (none for an unknown one).
            and (not opened.email or opened.user_id == owner.id)
            and (
                assertion.user_handle is None
                or hmac.compare_digest(assertion.user_handle, owner.id.bytes)
            )
        ):
            try:
                new_count = ceremonies.verify_assertion(
                    self._party,
                    assertion,
                    challenge=challenge_bytes,
                    public_key=passkey.public_key,
                    sign_count=passkey.sign_count,
                )
            except ceremonies.CeremonyFailed:
                new_count = None
        if new_count is None or passkey is None or owner is None:
            await self._record_failure(call, email=email, user=owner, attempt=attempt)
            raise SecondFactorInvalid("the passkey assertion does not verify")

        state_error = _STATE_ERRORS.get(owner.status)
        if state_error is not None:
            await self._logins.release(attempt)  # a verified passkey is no guess
            raise state_error()
        try:
            await run_hook(
                "before_login",
                self._hooks.before_login,
                LoginAttempt(user=owner, remember=remember, client_ip=call.client_ip),
            )
        except (HookRefused, HookFailed):
            await self._logins.release(attempt)  # as for the account's state above
            raise
        try:
            return await self._open_session(
                owner,
                passkey,
                new_count,
                remember=remember,
                email=email,
                attempt=attempt,
                call=call,
            )
        except _Replayed:
            await self._record_failure(call, email=email, user=owner, attempt=attempt)
            raise SecondFactorInvalid("the passkey was used concurrently") from None

    async def _open_session(
        self,
        owner: UserRecord,
        passkey: passkey_rows.StoredPasskey,
        new_count: int,
        *,
        remember: bool,
        email: str,
        attempt: Attempt | None,
        call: CallContext,
    ) -> tuple[UserRecord, SessionGrant]:
        remember = remember and self._settings.remember_option
        forget = self._throttle.to_forget(email, attempt)

        async def write(conn: Connection) -> tuple[UserRecord, SessionGrant]:
            # Locked: a block landing meanwhile waits for this login, or is what it reads.
            current = await user_rows.get(conn, owner.id, lock=True)
            if current is None:
                raise SecondFactorInvalid("the passkey's user is gone")
            state_error = _STATE_ERRORS.get(current.status)
            if state_error is not None:
                raise state_error()
            session = self._sessions.new(remember=remember)
            used = await passkey_rows.use_passkey(
                conn,
                passkey.record.id,
                expected_count=passkey.sign_count,
                new_count=new_count,
                now=session.now,
            )
            if not used:
                raise _Replayed()
            await session_rows.insert_session(
                conn,
                user_id=current.id,
                token_digest=session.token_digest,
                lifetime=session.lifetime,
                remember=session.remember,
                client_ip=call.client_ip,
                now=session.now,
                session_id=session.id,
            )
            await self._logins_done(conn, forget, attempt)
            await self._events.record(conn, EventKind.PASSKEY_LOGIN, call, user=current)
            return current, session.grant

        try:
            return await self._database.transaction(write)
        except tuple(_STATE_ERRORS.values()):
            await self._logins.release(attempt)  # blocked meanwhile: still no guess
            raise

    async def _logins_done(
        self, conn: Connection, forget: bytes | None, attempt: Attempt | None
    ) -> None:
        # As a correct password does: the address's failures are cleared, the place given back.
        if forget is not None:
            await failure_rows.forget(conn, email_key=forget)
        if attempt is not None and attempt.reserved is not None:
            await failure_rows.release(conn, attempt.reserved)

    async def _record_failure(
        self, call: CallContext, *, email: str, user: UserRecord | None, attempt: Attempt | None
    ) -> None:
        async def record(conn: Connection) -> None:
            await self._throttle.failed(conn, email, call.client_ip, attempt)
            await self._events.record(
                conn,
                EventKind.PASSKEY_LOGIN_FAILED,
                call,
                user=user,
                email=email or "an unknown credential",
            )

        await self._database.transaction(record)


def _check_name(problems: Violations, name: str) -> None:
    if not problems.required("name", name.strip()):
        return
    if len(name.strip()) > MAX_PASSKEY_NAME:
        problems.add("name", f"name must be at most {MAX_PASSKEY_NAME} characters")
    elif any(unicodedata.category(char) == "Cc" for char in name):
        problems.add("name", "name must not contain control characters")


def _check_credential(problems: Violations, credential_json: str) -> None:
    if problems.required("credential_json", credential_json) and (
        len(credential_json) > _MAX_CREDENTIAL_JSON
    ):
        problems.add(
            "credential_json", f"credential_json must be at most {_MAX_CREDENTIAL_JSON} characters"
        )


def _or_invalid(parse: Callable[[str], _T], credential_json: str) -> _T:
    try:
        return parse(credential_json)
    except ceremonies.MalformedCredential as error:
        raise InvalidArgument(
            [FieldViolation("credential_json", f"not a WebAuthn credential: {error}")]
        ) from None
