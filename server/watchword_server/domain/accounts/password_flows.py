"""Password retrieval (a mailed reset key), reset with that key, and change while logged in."""

from __future__ import annotations

import uuid

from watchword_server.domain.access.changes import Change
from watchword_server.domain.accounts.account_keys import Purpose
from watchword_server.domain.accounts.hooks import PasswordChangeAttempt, run_hook
from watchword_server.domain.accounts.password_policy import PasswordPolicy
from watchword_server.domain.accounts.services import AccountFlow, AccountServices
from watchword_server.domain.common.background import BackgroundWork
from watchword_server.domain.common.validation import Violations
from watchword_server.model.errors import (
    InvalidArgument,
    Overloaded,
    PasswordIncorrect,
    ResetKeyInvalid,
    SessionInvalid,
)
from watchword_server.model.records import CallContext, EventKind, UserRecord, UserStatus
from watchword_server.storage.db import Connection
from watchword_server.storage.repositories import account_keys as key_rows
from watchword_server.storage.repositories import sessions as session_rows
from watchword_server.storage.repositories import users as user_rows

__all__ = ["PasswordFlows"]

# Accounts that get no reset mail: an administrator decides about these, not a mailbox.
_NO_RESET = frozenset({UserStatus.BLOCKED, UserStatus.PENDING_APPROVAL})


class PasswordFlows(AccountFlow):
    """RequestPasswordReset, ResetPassword and ChangePassword."""

    def __init__(self, services: AccountServices, background: BackgroundWork) -> None:
        self._background = background
        super().__init__(services)

    def _check_new_password(self, problems: Violations, field: str, password: str) -> None:
        # Length and the common list; the account's own address and name come once the
        # account is known (``_refuse_own``).
        PasswordPolicy.of(self._settings).check(problems, field, password)

    @staticmethod
    def _refuse_own(password: str, user: UserRecord) -> None:
        if PasswordPolicy.is_own(
            password, email=user.email, names=(user.first_name, user.last_name)
        ):
            problems = Violations()
            PasswordPolicy.refuse_own(problems, "new_password")
            raise InvalidArgument(problems.items)

    async def request_reset(self, *, email: str, call: CallContext) -> None:
        """Mail a reset key if the account may reset; answer alike for every address, in
        content and in time: the account is read before the answer (so a database that
        cannot be reached is UNAVAILABLE for all), and the key is issued after it, in the
        background (its write is what took a known address several milliseconds longer).

        A newer request voids the keys of older ones.
        """
        problems = Violations()
        problems.email("email", email)
        if problems:
            raise InvalidArgument(problems.items)
        self._background.refuse_if_full()  # before the read: a refusal tells nothing
        async with self._database.connect() as conn:
            found = await user_rows.status_by_email(conn, email)
        # Work is started for every address (nothing to do for most unknown ones), so the
        # start costs every answer alike.
        user_id = None if found is None or found[1] in _NO_RESET else found[0]
        self._background.start(self._issue_reset(user_id, call), name="reset-key")

    async def _issue_reset(self, user_id: uuid.UUID | None, call: CallContext) -> None:
        if user_id is None:
            return

        async def issue(conn: Connection) -> None:
            # Locked: requests issue their keys one after the other, each voiding the keys
            # before it, so one key is live at the end however they raced.
            user = await user_rows.get(conn, user_id, lock=True)
            if user is None or user.status in _NO_RESET:
                return
            await self._keys.issue(conn, user, Purpose.RESET)
            await self._events.record(conn, EventKind.PASSWORD_RETRIEVAL, call, user=user)
            self._database.after_commit(conn, self._mail_queued)

        await self._database.transaction(issue)

    async def reset(self, *, reset_key: str, new_password: str, call: CallContext) -> UserRecord:
        """Set a new password with a mailed key.

        Re-enables a DISABLED account, marks the address verified (finishing a pending
        verification) and revokes every session of the account. A BLOCKED account stays
        blocked.
        """
        problems = Violations()
        self._check_new_password(problems, "new_password", new_password)
        if problems:
            raise InvalidArgument(problems.items)
        # A bcrypt hash is the expensive part: spend it only on a key that can work.
        async with self._database.connect() as conn:
            owner_id = await self._keys.live_owner(conn, reset_key, Purpose.RESET)
            owner = None if owner_id is None else await user_rows.get(conn, owner_id)
        if owner is None:
            raise ResetKeyInvalid()
        self._refuse_own(new_password, owner)
        await run_hook(
            "before_password_change",
            self._hooks.before_password_change,
            PasswordChangeAttempt(user=owner, kind="reset", client_ip=call.client_ip),
        )
        password_hash = await self._hasher.hash(new_password)

        async def apply(conn: Connection) -> UserRecord:
            user_id = await self._keys.consume(conn, reset_key, Purpose.RESET)
            # Locked: the new status is computed from this one (see Accounts.verify).
            user = None if user_id is None else await user_rows.get(conn, user_id, lock=True)
            if user is None:
                raise ResetKeyInvalid()
            status = user.status
            if status is UserStatus.DISABLED:
                status = UserStatus.ACTIVE
            elif status is UserStatus.PENDING_VERIFICATION:
                approval = self._settings.registration_approval
                status = UserStatus.PENDING_APPROVAL if approval else UserStatus.ACTIVE
            updated = await user_rows.update_user(
                conn,
                user.id,
                now=self._clock.now(),
                status=status,
                email_verified=True,
                password_hash=password_hash,
            )
            if updated is None:
                raise ResetKeyInvalid()
            await session_rows.delete_for_user(conn, user.id)
            await self._events.record(conn, EventKind.PASSWORD_RESET, call, user=updated)
            await self._notices.publish(conn, Change.of_users(user.id))
            return updated

        return await self._database.transaction(apply)

    async def change(
        self, *, session_token: str, old_password: str, new_password: str, call: CallContext
    ) -> None:
        """Change the password of a logged-in user; revokes the user's other sessions."""
        problems = Violations()
        problems.required("old_password", old_password)
        self._check_new_password(problems, "new_password", new_password)
        if problems:
            raise InvalidArgument(problems.items)
        session = await self._sessions.introspect(session_token, cached=False)
        self._refuse_own(new_password, session.user)
        email = session.user.email
        # A stolen session must not become a way to guess the password: the check takes
        # its place among the address's failures first, as a login's does.
        failures = self._throttle.query(email, call.client_ip)
        attempt = None if failures is None else await self._logins.reserve(failures)
        self._throttle.refuse_unless_reserved(attempt)
        async with self._database.connect() as conn:
            stored_hash = await user_rows.password_hash_of(conn, session.user.id)
        if stored_hash is None:
            await self._logins.release(attempt)
            raise SessionInvalid()
        try:
            correct = await self._hasher.verify(old_password, stored_hash)
        except Overloaded:
            await self._logins.release(attempt)
            raise
        if not correct:
            await self._database.transaction(
                lambda conn: self._throttle.failed(conn, email, call.client_ip, attempt)
            )
            raise PasswordIncorrect()
        await self._logins.release(attempt)
        await run_hook(
            "before_password_change",
            self._hooks.before_password_change,
            PasswordChangeAttempt(user=session.user, kind="change", client_ip=call.client_ip),
        )
        new_hash = await self._hasher.hash(new_password)

        async def apply(conn: Connection) -> None:
            changed = await user_rows.set_password_hash(
                conn, session.user.id, new_hash, expected_old=stored_hash
            )
            if not changed:  # changed concurrently: the old password we checked is stale
                raise PasswordIncorrect()
            await session_rows.delete_for_user(conn, session.user.id, keep=session.session_id)
            # A reset key mailed before the change must not undo it.
            await key_rows.void_unused(conn, session.user.id, Purpose.RESET.value)
            await self._events.record(conn, EventKind.PASSWORD_CHANGE, call, user=session.user)
            await self._notices.publish(conn, Change.of_users(session.user.id))

        await self._database.transaction(apply)
