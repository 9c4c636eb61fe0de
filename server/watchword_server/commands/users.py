"""``watchword users create|block|allow|disable|approve EMAIL`` and ``watchword users list``.

Status changes go through ``UserAdmin.set_status``, as AdminService's do: each writes its
event and publishes its change notice, so running servers drop the account's cached
sessions and answers at once. ``list`` reads page by page (keyset paging, one short query
each), so a big database is printed as it is read, never held in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from watchword_server.commands import CommandError
from watchword_server.domain.common.paging import MAX_PAGE_SIZE
from watchword_server.model.errors import (
    AccountBlocked,
    AccountDisabled,
    AccountPendingVerification,
    UserNotFound,
)
from watchword_server.model.records import CallContext, EventKind, UserRecord, UserStatus

if TYPE_CHECKING:
    from watchword_server.config import Settings
    from watchword_server.domain.admin.users import UserAdmin

__all__ = ["STATUS_COMMANDS", "change_status", "list_users", "run"]

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


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Run ``users COMMAND``; returns the exit status.

    Raises:
        CommandError: the account is unknown, approval does not apply, or no password was
            given to ``create``.
    """
    asyncio.run(_users(settings, arguments))
    return 0


async def _users(settings: Settings, arguments: argparse.Namespace) -> None:
    # Imported here, not above: every `watchword` start reads STATUS_COMMANDS from this
    # module to declare its arguments, and should not import the domain to do so.
    from watchword_server.commands.domain import open_domain
    from watchword_server.domain.admin.users import NewUser

    call = CallContext(origin="cli")
    command = arguments.users_command
    async with open_domain(settings) as domain:
        if command in STATUS_COMMANDS:
            print(await change_status(domain.user_admin, command, arguments.email, call))
            return
        if command == "list":
            status = UserStatus(arguments.status) if arguments.status else None
            count = await list_users(
                domain.user_admin, print, status=status, page_size=arguments.page_size
            )
            print(f"{count} user(s)")
            return
        new = NewUser(
            email=arguments.email,
            first_name=arguments.first_name,
            last_name=arguments.last_name,
            status=UserStatus.ACTIVE,
            email_verified=True,
            extra={},
            password=_read_password(),
        )
        if not new.password:
            raise CommandError("a password is required on standard input")
        # The user and its memberships are one transaction: nothing half-made on failure.
        user, _ = await domain.user_admin.create(new, call, groups=arguments.group)
        groups = f" in {', '.join(arguments.group)}" if arguments.group else ""
        print(f"created user {user.email}{groups}; its id:")
        print(user.id)


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")
