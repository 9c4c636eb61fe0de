"""End-user account flows: registration, e-mail verification, login and logout."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from watchword_server.domain.access.changes import Change
from watchword_server.domain.accounts.account_keys import Purpose
from watchword_server.domain.accounts.account_notices import REGISTRATION_EXISTS
from watchword_server.domain.accounts.hooks import LoginAttempt, RegisterAttempt, run_hook
from watchword_server.domain.accounts.login_states import STATE_ERRORS
from watchword_server.domain.accounts.password_policy import PasswordPolicy
from watchword_server.domain.accounts.second_factors import PendingSecondFactor, SecondFactors
from watchword_server.domain.accounts.services import AccountFlow, AccountServices
from watchword_server.domain.common import outbox
from watchword_server.domain.common.custom_fields import Writer, check_extra
from watchword_server.domain.common.validation import Violations
from watchword_server.model.email_addresses import stored_email
from watchword_server.model.errors import (
    EmailAlreadyExists,
    HookFailed,
    HookRefused,
    InvalidArgument,
    InvalidCredentials,
    Overloaded,
    VerificationKeyInvalid,
)
from watchword_server.model.records import (
    CallContext,
    EventKind,
    SessionGrant,
    UserRecord,
    UserStatus,
)
from watchword_server.storage.db import Connection
from watchword_server.storage.logins import Attempt, LoginWrite
from watchword_server.storage.repositories import users as user_rows

__all__ = ["Accounts", "Registration", "Login"]


@dataclass(frozen=True)
class Registration:
    """A new account, and its session when it may log in at once."""

    user: UserRecord
    session: SessionGrant | None


@dataclass(frozen=True)
class Login:
    """A correct password: its session, or (for a user with a second factor) the challenge
    to complete the login with instead."""

    user: UserRecord
    session: SessionGrant | None
    second_factor: PendingSecondFactor | None = None


class Accounts(AccountFlow):
    """Registration, verification, login and logout, each in one transaction."""

    def __init__(self, services: AccountServices, second_factors: SecondFactors) -> None:
        self._second_factors = second_factors
        super().__init__(services)

    def _initial_status(self) -> UserStatus:
        if self._settings.registration_verification:
            return UserStatus.PENDING_VERIFICATION
        if self._settings.registration_approval:
            return UserStatus.PENDING_APPROVAL
        return UserStatus.ACTIVE

    async def register(
        self,
        *,
        email: str,
        password: str,
        first_name: str,
        last_name: str,
        extra: dict[str, Any],
        call: CallContext,
    ) -> Registration:
        """Create an account in the status the registration settings call for.

        Raises:
            InvalidArgument: a field is missing or malformed, or the password is too short.
            EmailAlreadyExists: the address is taken (checked again by a unique index, so
                concurrent registrations of one address give exactly one account).
        """
        settings = self._settings
        problems = Violations()
        problems.email("email", email)
        PasswordPolicy.of(settings).check(
            problems, "password", password, email=email, names=(first_name, last_name)
        )
        problems.name("first_name", first_name, required=settings.names_required)
        problems.name("last_name", last_name, required=settings.names_required)
        extra = check_extra(
            settings.custom_fields,
            extra,
            writer=Writer.REGISTRATION,
            problems=problems,
            require=True,
        )
        if problems:
            raise InvalidArgument(problems.items)
        # Before the address is looked up: a refusal tells nothing of who has an account.
        await run_hook(
            "before_register",
            self._hooks.before_register,
            RegisterAttempt(
                email=email,
                first_name=first_name,
                last_name=last_name,
                extra=dict(extra),
                client_ip=call.client_ip,
            ),
        )

        safe = settings.registration_enumeration_safe
        if not safe:
            # A cheap early answer for the common duplicate, before paying for a hash.
            async with self._database.connect() as conn:
                if await user_rows.email_exists(conn, email):
                    raise EmailAlreadyExists()
        password_hash = await self._hasher.hash(password)

        status = self._initial_status()

        async def create(conn: Connection) -> Registration:
            try:
                user = await user_rows.insert_user(
                    conn,
                    email=email,
                    password_hash=password_hash,
                    first_name=first_name,
                    last_name=last_name,
                    status=status,
                    email_verified=False,
                    extra=extra,
                    now=self._clock.now(),
                )
            except user_rows.EmailTaken as error:
                if not safe:
                    raise EmailAlreadyExists() from error
                return await self._answer_as_new(conn, email, first_name, last_name, extra)
            await self._events.record(conn, EventKind.REGISTRATION, call, user=user)
            session = None
            if status is UserStatus.ACTIVE:
                session = await self._sessions.create(
                    conn, user, remember=False, client_ip=call.client_ip
                )
            elif status is UserStatus.PENDING_VERIFICATION:
                await self._keys.issue(conn, user, Purpose.VERIFICATION)
                self._database.after_commit(conn, self._mail_queued)
            return Registration(user=user, session=session)

        return await self._database.transaction(create)

    async def _answer_as_new(
        self, conn: Connection, email: str, first_name: str, last_name: str, extra: dict[str, Any]
    ) -> Registration:
        # registration_enumeration_safe: the address has an account. The caller gets what a
        # new address gets (an account pending, no session; the id is of no account), after
        # the same hash and a transaction that queues a mail, here to the owner.
        now = self._clock.now()
        stored = await user_rows.find_by_email(conn, email)
        if stored is not None:
            await outbox.enqueue(
                conn,
                kind=REGISTRATION_EXISTS,
                recipient=stored.record.email,
                context={"email": stored.record.email},
                now=now,
            )
            self._database.after_commit(conn, self._mail_queued)
        lookalike = UserRecord(
            id=uuid.uuid4(),
            email=stored_email(email),
            first_name=first_name,
            last_name=last_name,
            status=self._initial_status(),
            email_verified=False,
            create_time=now,
            update_time=now,
            extra=extra,
        )
        return Registration(user=lookalike, session=None)

    async def verify(self, *, verification_key: str, call: CallContext) -> UserRecord:
        """Confirm the e-mail address with the mailed key (single-use, expiring).

        The account becomes ACTIVE, or PENDING_APPROVAL when approval is on; an account in
        any other state keeps it (a blocked user stays blocked) but its address is verified.
        """

        async def confirm(conn: Connection) -> UserRecord:
            user_id = await self._keys.consume(conn, verification_key, Purpose.VERIFICATION)
            # Locked: the new status is computed from this one, so a block landing
            # meanwhile must wait for this transaction, or be what it reads.
            user = None if user_id is None else await user_rows.get(conn, user_id, lock=True)
            if user is None:
                raise VerificationKeyInvalid()
            status = user.status
            if status is UserStatus.PENDING_VERIFICATION:
                approval = self._settings.registration_approval
                status = UserStatus.PENDING_APPROVAL if approval else UserStatus.ACTIVE
            updated = await user_rows.update_user(
                conn, user.id, now=self._clock.now(), status=status, email_verified=True
            )
            if updated is None:  # deleted in the meantime
                raise VerificationKeyInvalid()
            await self._events.record(conn, EventKind.EMAIL_VERIFICATION, call, user=updated)
            await self._notices.publish(conn, Change.of_users(updated.id))
            return updated

        return await self._database.transaction(confirm)

    async def authenticate(
        self, *, email: str, password: str, remember: bool, call: CallContext
    ) -> Login:
        """Log in with e-mail and password.

        Unknown e-mail and wrong password raise the same InvalidCredentials after the same
        work (a hash verification and one event), so neither content nor timing tells them
        apart. The account's state is told only after a correct password. Past the
        throttling limits, TooManyAttempts comes before any password is checked; when the
        hashing pool's queue is full, Overloaded comes before anything is written, and the
        attempt counts as none.
        """
        problems = Violations()
        problems.login_email("email", email)
        problems.required("password", password)
        if problems:
            raise InvalidArgument(problems.items)

        # A full hashing pool refuses before anything is read or written.
        self._hasher.refuse_if_full()
        # What decides before the password is checked, read in one visit: the account and
        # the failures that may throttle this attempt, which takes its place among them
        # (under a lock, so parallel guesses cannot all get through; see
        # domain/accounts/throttle.py).
        stored, attempt = await self._logins.read(
            email, self._throttle.query(email, call.client_ip)
        )
        self._throttle.refuse_unless_reserved(attempt)
        # From here on an unknown address costs what a known one does. A busy hashing pool
        # refuses (Overloaded) before any write: a refusal counts as no attempt at all.
        try:
            if stored is None:
                await self._hasher.verify_dummy(password)
                correct = False
            else:
                correct = await self._hasher.verify(password, stored.password_hash)
        except Overloaded:
            await self._logins.release(attempt)
            raise
        if stored is None or not correct:
            await self._record_failure(
                call, email=email, user=None if stored is None else stored.record, attempt=attempt
            )
            raise InvalidCredentials()

        user = stored.record
        state_error = STATE_ERRORS.get(user.status)
        if state_error is not None:
            await self._logins.release(attempt)  # the right password is no guess
            raise state_error()
        try:
            await run_hook(
                "before_login",
                self._hooks.before_login,
                LoginAttempt(user=user, remember=remember, client_ip=call.client_ip),
            )
        except (HookRefused, HookFailed):
            await self._logins.release(attempt)  # as for the account's state above
            raise

        new_hash = None
        if self._hasher.needs_rehash(stored.password_hash):
            # The upgrade can wait for a later login; this one need not fail for it.
            with contextlib.suppress(Overloaded):
                new_hash = await self._hasher.hash(password)
        remember = remember and self._settings.remember_option
        if stored.second_factor:
            pending = await self._second_factors.challenge(
                user=user,
                password_hash=stored.password_hash,
                new_hash=new_hash,
                remember=remember,
                attempt=attempt,
                call=call,
            )
            return Login(user=user, session=None, second_factor=pending)
        session = self._sessions.new(remember=remember)
        # The checks above ran outside any transaction while the hash was computed: a
        # reset, a password change or a block may have landed since. The write re-checks
        # under a row lock and writes nothing unless the account still allows this login
        # (see storage/logins.py, also for why its commit does not wait for the disk).
        current = await self._logins.finish(
            LoginWrite(
                user_id=user.id,
                expected_hash=stored.password_hash,
                new_hash=new_hash,
                session_id=session.id,
                token_digest=session.token_digest,
                lifetime=session.lifetime,
                remember=session.remember,
                client_ip=call.client_ip,
                now=session.now,
                forget_email_key=self._throttle.to_forget(email, attempt),
                release=None if attempt is None else attempt.reserved,
                event_description=self._events.description(EventKind.LOGIN, call, user=user),
                origin=call.origin,
            )
        )
        if current is None or current[1] != stored.password_hash:
            raise InvalidCredentials()
        state_error = STATE_ERRORS.get(current[0])
        if state_error is not None:
            await self._logins.release(attempt)
            raise state_error()
        return Login(user=user, session=session.grant)

    async def logout(self, *, session_token: str, call: CallContext) -> None:
        """Revoke the session; raises SessionInvalid when it is unknown or already gone."""

        async def revoke(conn: Connection) -> None:
            user_id = await self._sessions.revoke(conn, session_token)
            user = await user_rows.get(conn, user_id)
            await self._events.record(conn, EventKind.LOGOUT, call, user=user)

        await self._database.transaction(revoke)

    async def _record_failure(
        self, call: CallContext, *, email: str, user: UserRecord | None, attempt: Attempt | None
    ) -> None:

        async def record(conn: Connection) -> None:
            await self._throttle.failed(conn, email, call.client_ip, attempt)
            await self._events.record(conn, EventKind.LOGIN_FAILED, call, user=user, email=email)

        await self._database.transaction(record)
