"""User administration: create, read, list, update, delete, and account state changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watchword_server.config import Settings
from watchword_server.domain.access.changes import Change, ChangeNotices
from watchword_server.domain.accounts.account_keys import Purpose
from watchword_server.domain.accounts.password_policy import PasswordPolicy
from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.clock import Clock
from watchword_server.domain.common.custom_fields import Writer, check_extra
from watchword_server.domain.common.lookups import existing_user
from watchword_server.domain.common.paging import PageTokens, page_size, split_page
from watchword_server.domain.common.validation import Violations
from watchword_server.model.email_addresses import email_key
from watchword_server.model.errors import (
    AccountBlocked,
    AccountDisabled,
    AccountPendingVerification,
    EmailAlreadyExists,
    GroupAlreadyExists,
    InvalidArgument,
    UserNotFound,
)
from watchword_server.model.records import CallContext, EventKind, UserRecord, UserStatus
from watchword_server.security.hashing_pool import HashingPool
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import account_keys as key_rows
from watchword_server.storage.repositories import groups as group_rows
from watchword_server.storage.repositories import sessions as session_rows
from watchword_server.storage.repositories import users as user_rows

__all__ = ["NO_PASSWORD", "NewUser", "UserAdmin", "UserChanges"]

# Stored for accounts created without a password: no password ever verifies against it,
# so the user must set one through a password reset.
NO_PASSWORD = "!no-password"  # noqa: S105 - a marker, not a secret


_MAX_GROUP_NAME = 255


@dataclass(frozen=True)
class NewUser:
    """What CreateUser gives."""

    email: str
    first_name: str
    last_name: str
    status: UserStatus | None
    email_verified: bool
    extra: dict[str, Any]
    password: str


@dataclass(frozen=True)
class UserChanges:
    """What UpdateUser gives: the mask's paths and the values they name."""

    paths: Sequence[str]
    email: str
    first_name: str
    last_name: str
    status: UserStatus | None
    email_verified: bool
    extra: dict[str, Any]


class UserAdmin:
    """The user half of AdminService; every change writes an event."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        hasher: HashingPool,
        events: EventLog,
        pages: PageTokens,
        clock: Clock,
        notices: ChangeNotices,
    ) -> None:
        self._settings = settings
        self._database = database
        self._hasher = hasher
        self._events = events
        self._pages = pages
        self._clock = clock
        self._notices = notices

    async def create(
        self, new: NewUser, call: CallContext, *, groups: Sequence[str] = ()
    ) -> tuple[UserRecord, str]:
        """Create an account in any status (ACTIVE when unset), sending no mail; returns it
        and the revision it was committed at. With ``groups`` the account is made a member
        of each (created if missing) in the same transaction: all of it or none."""
        problems = Violations()
        for name in groups:
            if not name or len(name) > _MAX_GROUP_NAME or not name.isprintable():
                problems.add("groups", f"{name!r} is not a group name")
        problems.email("user.email", new.email)
        if new.password:
            PasswordPolicy.of(self._settings).check(
                problems,
                "password",
                new.password,
                email=new.email,
                names=(new.first_name, new.last_name),
            )
        problems.name("user.first_name", new.first_name, required=False)
        problems.name("user.last_name", new.last_name, required=False)
        extra = check_extra(
            self._settings.custom_fields,
            new.extra,
            writer=Writer.ADMIN,
            problems=problems,
            require=False,
            prefix="user.extra",
        )
        if problems:
            raise InvalidArgument(problems.items)
        password_hash = NO_PASSWORD
        if new.password:
            password_hash = await self._hasher.hash(new.password)

        async def insert(conn: Connection) -> tuple[UserRecord, str]:
            try:
                user = await user_rows.insert_user(
                    conn,
                    email=new.email,
                    password_hash=password_hash,
                    first_name=new.first_name,
                    last_name=new.last_name,
                    status=new.status or UserStatus.ACTIVE,
                    email_verified=new.email_verified,
                    extra=extra,
                    now=self._clock.now(),
                )
            except user_rows.EmailTaken as error:
                raise EmailAlreadyExists() from error
            await self._events.record(conn, EventKind.USER_CREATED, call, user=user)
            for name in dict.fromkeys(groups):
                await self._join(conn, user, name, call)
            revision = await self._notices.publish(conn, Change.of_users(user.id))
            return user, revision

        return await self._database.transaction(insert)

    async def _join(self, conn: Connection, user: UserRecord, name: str, call: CallContext) -> None:
        now = self._clock.now()
        group = await group_rows.find_group(conn, name)
        if group is None:
            try:
                group = await group_rows.insert_group(
                    conn, name=name, description="", extra={}, now=now
                )
            except group_rows.GroupTaken as error:  # made meanwhile: try again
                raise GroupAlreadyExists() from error
            await self._events.record(conn, EventKind.GROUP_CREATED, call, values={"group": name})
        await group_rows.insert_membership(conn, group=group, user_id=user.id, extra={}, now=now)
        await self._events.record(
            conn, EventKind.MEMBERSHIP_ADDED, call, user=user, values={"group": name}
        )

    async def get(self, user_id: str) -> UserRecord:
        """The user with this id."""
        async with self._database.connect() as conn:
            return await existing_user(conn, user_id)

    async def lookup(self, email: str) -> UserRecord:
        """The user with this address (case-insensitively)."""
        if not email or len(email) > 320 or "\x00" in email:
            raise UserNotFound()
        async with self._database.connect() as conn:
            stored = await user_rows.find_by_email(conn, email)
        if stored is None:
            raise UserNotFound()
        return stored.record

    async def list(
        self, *, size: int, token: str, status: UserStatus | None
    ) -> tuple[list[UserRecord], str]:
        """A page of users, oldest first, and the token of the next page ("" at the end)."""
        limit = page_size(size)
        scope = f"ListUsers:{status.value if status else ''}"
        after = self._pages.decode_after(scope, token)
        async with self._database.connect() as conn:
            users = await user_rows.list_users(conn, status=status, after=after, limit=limit + 1)
        return split_page(
            users, limit, lambda last: self._pages.encode_after(scope, last.create_time, last.id)
        )

    async def update(
        self, user_id: str, changes: UserChanges, call: CallContext
    ) -> tuple[UserRecord, str]:
        """Change the fields named in the mask; e-mail stays unique. Returns the user and the
        revision of the change."""
        problems = Violations()
        values: dict[str, Any] = {}
        extra_given = False
        if not changes.paths:
            problems.add("update_mask", "update_mask names the fields to change")
        for path in dict.fromkeys(changes.paths):
            if path == "email":
                problems.email("user.email", changes.email)
                values["email"] = changes.email
            elif path in ("first_name", "last_name"):
                value = getattr(changes, path)
                problems.name(f"user.{path}", value, required=False)
                values[path] = value
            elif path == "status":
                if changes.status is None:
                    problems.add("user.status", "a status is required")
                values["status"] = changes.status
            elif path == "email_verified":
                values["email_verified"] = changes.email_verified
            elif path == "extra":
                extra_given = True
            else:
                problems.add("update_mask", f"{path} cannot be updated")
        if extra_given:
            values["extra"] = check_extra(
                self._settings.custom_fields,
                changes.extra,
                writer=Writer.ADMIN,
                problems=problems,
                require=False,
                prefix="user.extra",
            )
        if problems:
            raise InvalidArgument(problems.items)

        async def change(conn: Connection) -> tuple[UserRecord, str]:
            current = await existing_user(conn, user_id, lock=True)
            columns = dict(values)  # a retry starts again from the request's values
            new_email = columns.pop("email", None)
            if new_email is not None and email_key(new_email) != email_key(current.email):
                if await user_rows.email_exists(conn, new_email):
                    raise EmailAlreadyExists()
                # Keys mailed to the old address must not work for the new one, and the
                # new address is unverified unless the mask says otherwise.
                for purpose in Purpose:
                    await key_rows.void_unused(conn, current.id, purpose.value)
                columns.setdefault("email_verified", False)
            try:
                updated = await user_rows.update_user(
                    conn, current.id, now=self._clock.now(), email=new_email, **columns
                )
            except user_rows.EmailTaken as error:
                raise EmailAlreadyExists() from error
            if updated is None:
                raise UserNotFound()
            if updated.status is not UserStatus.ACTIVE:
                # Sessions end with ACTIVE, or a later return to it would revive them.
                await session_rows.delete_for_user(conn, updated.id)
            await self._events.record(conn, EventKind.USER_UPDATED, call, user=updated)
            revision = await self._notices.publish(conn, Change.of_users(updated.id))
            return updated, revision

        return await self._database.transaction(change)

    async def delete(self, user_id: str, call: CallContext) -> str:
        """Delete the account with its sessions and memberships; its events stay. Returns
        the revision of the change."""

        async def remove(conn: Connection) -> str:
            user = await existing_user(conn, user_id)
            await user_rows.delete_user(conn, user.id)
            await self._events.record(conn, EventKind.USER_DELETED, call, user=user)
            return await self._notices.publish(conn, Change.of_users(user.id))

        return await self._database.transaction(remove)

    async def set_status(
        self, user_id: str, kind: EventKind, call: CallContext
    ) -> tuple[UserRecord, str]:
        """Disable, block, allow or approve (by the event ``kind``); revokes sessions at
        once when the account may no longer be logged in. Returns the user and the
        revision of the change."""

        async def change_status(conn: Connection) -> tuple[UserRecord, str]:
            user = await existing_user(conn, user_id, lock=True)  # read-modify-write
            status = _next_status(user.status, kind)
            updated = await user_rows.update_user(
                conn, user.id, now=self._clock.now(), status=status
            )
            if updated is None:
                raise UserNotFound()
            if status is not UserStatus.ACTIVE:
                await session_rows.delete_for_user(conn, user.id)
            await self._events.record(conn, kind, call, user=updated)
            revision = await self._notices.publish(conn, Change.of_users(updated.id))
            return updated, revision

        return await self._database.transaction(change_status)

    async def revoke_sessions(self, user_id: str, call: CallContext) -> str:
        """End every session of the user; returns the revision of the change."""

        async def revoke(conn: Connection) -> str:
            user = await existing_user(conn, user_id)
            await session_rows.delete_for_user(conn, user.id)
            await self._events.record(conn, EventKind.SESSIONS_REVOKED, call, user=user)
            return await self._notices.publish(conn, Change.of_users(user.id))

        return await self._database.transaction(revoke)


def _next_status(current: UserStatus, kind: EventKind) -> UserStatus:
    if kind is EventKind.USER_DISABLED:
        return UserStatus.DISABLED
    if kind is EventKind.USER_BLOCKED:
        return UserStatus.BLOCKED
    if kind is EventKind.USER_ALLOWED:
        return UserStatus.ACTIVE
    # Approval: only what waits for it (or is already active) becomes active.
    if current in (UserStatus.PENDING_APPROVAL, UserStatus.ACTIVE):
        return UserStatus.ACTIVE
    refusal = {
        UserStatus.PENDING_VERIFICATION: AccountPendingVerification,
        UserStatus.DISABLED: AccountDisabled,
        UserStatus.BLOCKED: AccountBlocked,
    }[current]
    raise refusal()
