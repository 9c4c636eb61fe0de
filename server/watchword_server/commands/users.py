"""``watchword users block|allow|disable|approve EMAIL`` and ``watchword users list``.

Status changes go through ``UserAdmin.set_status``, as AdminService's do: each writes its
event and publishes its change notice, so running servers drop the account's cached
sessions and answers at once. ``list`` reads page by page (keyset paging, one short query
each), so a big database is printed as it is read, never held in memory.
"""

from __future__ import annotations

from collections.abc import Callable

from watchword_server.commands import CommandError
from watchword_server.domain.admin.users import UserAdmin
from watchword_server.domain.common.paging import MAX_PAGE_SIZE
from watchword_server.model.errors import (
    AccountBlocked,
    AccountDisabled,
    AccountPendingVerification,
    UserNotFound,
)
from watchword_server.model.records import CallContext, EventKind, UserRecord, UserStatus

__all__ = ["STATUS_COMMANDS", "change_status", "list_users"]

STATUS_COMMANDS: dict[str, tuple[EventKind, str]] = {
    "block": (EventKind.USER_BLOCKED, "block an account: no login, sessions end at once"),
    "allow": (EventKind.USER_ALLOWED, "make an account active again (after block or disable)"),
    "disable": (EventKind.USER_DISABLED, "disable an account (a password reset re-enables it)"),
    "approve": (EventKind.USER_APPROVED, "approve an account pending approval"),
}
"""Each status subcommand: the change it makes (as its event kind) and its help."""

# Approval refuses what an approval must not decide: say what would.
_REFUSALS: dict[type[Exception], str] = {
    AccountPendingVerification: "its address is not verified yet",
    AccountDisabled: "it is disabled (`watchword users allow` makes it active)",
    AccountBlocked: "it is blocked (`watchword users allow` makes it active)",
}


async def change_status(users: UserAdmin, command: str, email: str, call: CallContext) -> str:
    """Apply ``command`` (a key of STATUS_COMMANDS) to the account of ``email``; returns
    what to print.

    Raises:
        CommandError: no account has that address, or approval does not apply to it.
    """
    kind, _ = STATUS_COMMANDS[command]
    try:
        user = await users.lookup(email)
        updated, _ = await users.set_status(str(user.id), kind, call)
    except UserNotFound:
        raise CommandError(f"no user has the address {email!r}") from None
    except (AccountPendingVerification, AccountDisabled, AccountBlocked) as error:
        raise CommandError(f"{email} cannot be approved: {_REFUSALS[type(error)]}") from None
    return f"{updated.email} is now {updated.status.value} ({updated.id})"


async def list_users(
    users: UserAdmin,
    write: Callable[[str], None],
    *,
    status: UserStatus | None = None,
    page_size: int = MAX_PAGE_SIZE,
) -> int:
    """Write a table of accounts (email, status, created), oldest first; returns how many.

    The email column is as wide as the first page's longest address, so the table can be
    printed before the last page is read.
    """
    token = ""
    width = 0
    count = 0
    while True:
        page, token = await users.list(size=page_size, token=token, status=status)
        if not width:
            width = max([len("EMAIL"), *(len(user.email) for user in page)])
            write(_row("EMAIL", "STATUS", "CREATED", width))
        for user in page:
            write(_line(user, width))
        count += len(page)
        if not token:
            return count


def _line(user: UserRecord, width: int) -> str:
    created = user.create_time.isoformat(sep=" ", timespec="seconds")
    return _row(user.email, user.status.value, created, width)


def _row(email: str, status: str, created: str, width: int) -> str:
    # The longest status word is pending_verification (20 characters).
    return f"{email:<{width}}  {status:<20}  {created}".rstrip()
