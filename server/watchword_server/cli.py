"""The ``watchword`` command: ``serve``, ``migrate``, ``keys``, ``users``, ``mail`` and
``import-emmett``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from pydantic import ValidationError

from watchword_server import __version__
from watchword_server.app import StartupError, WatchwordServer, check_schema
from watchword_server.config import Settings, SettingsError, load_settings
from watchword_server.domain.access.service_keys import KeyNameTaken, KeyNotFound, Scope
from watchword_server.domain.admin.users import NewUser
from watchword_server.domain.common.clock import SystemClock
from watchword_server.emmett_command import add_parser as add_import_emmett_parser
from watchword_server.emmett_command import import_emmett
from watchword_server.model.errors import DependencyUnavailable, DomainError
from watchword_server.model.records import CallContext, UserStatus
from watchword_server.runtime.mail_transports import LogTransport
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.emmett_source import EmmettSourceError
from watchword_server.storage.repositories.emmett_imports import RowTaken
from watchword_server.storage.schema import MigrationRefused, upgrade
from watchword_server.supervisor import AddressInUse, supervise
from watchword_server.wiring import Domain, build_domain

__all__ = ["main"]

_log = logging.getLogger("watchword")


async def _serve(settings: Settings, *, reuse_port: bool = False) -> None:
    server = WatchwordServer(settings, reuse_port=reuse_port)
    try:
        await server.start()
    except BaseException:
        await server.stop(0)
        raise
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    _log.info("shutting down: finishing calls in flight")
    await server.stop()


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


class CommandError(Exception):
    """A command failed in a way the user can fix; the message says how."""


@asynccontextmanager
async def _domain(settings: Settings) -> AsyncIterator[Domain]:
    engine = create_engine(settings.database_url)
    try:
        await check_schema(engine, settings)
        # The CLI sends no mail: a user created here needs none.
        yield build_domain(settings, Database(engine), SystemClock(), mail_transport=LogTransport())
    finally:
        await engine.dispose()


async def _keys(settings: Settings, arguments: argparse.Namespace) -> None:
    async with _domain(settings) as domain:
        keys = domain.service_keys
        if arguments.keys_command == "create":
            try:
                secret = await keys.create(arguments.name, Scope(arguments.scope))
            except KeyNameTaken:
                raise CommandError(f"a key named {arguments.name!r} exists already") from None
            print(f"created {arguments.scope} key {arguments.name!r}; its secret, shown once:")
            print(secret)
        elif arguments.keys_command == "list":
            for key in await keys.list():
                used = key.last_used_time.isoformat() if key.last_used_time else "never"
                print(
                    f"{key.name}\t{key.scope}\tcreated {key.create_time.isoformat()}"
                    f"\tlast used {used}"
                )
        else:
            try:
                await keys.revoke(arguments.name)
            except KeyNotFound:
                raise CommandError(f"no key is named {arguments.name!r}") from None
            print(f"revoked key {arguments.name!r}")


async def _mail(settings: Settings, arguments: argparse.Namespace) -> None:
    async with _domain(settings) as domain:
        sender = domain.mail_sender
        if arguments.mail_command == "dead":
            dead = await sender.dead_letters()
            for mail in dead:
                print(
                    f"{mail.id}\t{mail.kind}\t{mail.recipient}\t{mail.attempts} attempts"
                    f"\tgiven up {mail.dead_time.isoformat()}\t{mail.last_error}"
                )
            if not dead:
                print("no mail was given up")
            return
        if not arguments.ids and not arguments.all:
            raise CommandError(
                "name the mails to send again (ids from `watchword mail dead`) or --all"
            )
        revived = await sender.retry(None if arguments.all else arguments.ids)
        print(f"{revived} mail(s) due again; a running server sends them within seconds")


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


async def _users(settings: Settings, arguments: argparse.Namespace) -> None:
    call = CallContext(origin="cli")
    async with _domain(settings) as domain:
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchword",
        description="Watchword authentication and authorization service. Settings come "
        "from WATCHWORD_* environment variables and the TOML file named by WATCHWORD_CONFIG.",
    )
    parser.add_argument("--version", action="version", version=f"watchword {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve gRPC on the `listen` address")
    serve.add_argument("--listen", metavar="HOST:PORT", help="overrides the `listen` setting")
    serve.add_argument(
        "--config", metavar="FILE", help="a TOML settings file (instead of WATCHWORD_CONFIG)"
    )
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="server processes sharing the port (PostgreSQL only; about one per core)",
    )
    # A worker of `--workers`: join the address the supervisor checked (SO_REUSEPORT).
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    commands.add_parser("migrate", help="bring the database schema up to date")

    keys = commands.add_parser("keys", help="manage the service keys of calling services")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; prints its secret once")
    create.add_argument("name")
    create.add_argument("--scope", choices=[scope.value for scope in Scope], required=True)
    key_commands.add_parser("list", help="list keys (never their secrets)")
    revoke = key_commands.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("name")

    mail = commands.add_parser("mail", help="see and retry mail that was given up")
    mail_commands = mail.add_subparsers(dest="mail_command", required=True)
    mail_commands.add_parser("dead", help="list mails given up after mail_max_attempts")
    retry = mail_commands.add_parser("retry", help="send given-up mails again")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID")
    retry.add_argument("--all", action="store_true", help="every mail that was given up")

    users = commands.add_parser("users", help="manage users from the command line")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    create_user = user_commands.add_parser(
        "create", help="create an active user; the password is read from standard input"
    )
    create_user.add_argument("email")
    create_user.add_argument("--first-name", default="")
    create_user.add_argument("--last-name", default="")
    create_user.add_argument(
        "--group", action="append", default=[], help="a group to join (created if missing)"
    )
    add_import_emmett_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides: dict[str, object] = {}
    if arguments.command == "serve":
        if arguments.config is not None:
            if not os.path.isfile(arguments.config):
                print(f"watchword: --config {arguments.config}: no such file", file=sys.stderr)
                return 2
            os.environ["WATCHWORD_CONFIG"] = arguments.config
        if arguments.listen is not None:
            overrides["listen"] = arguments.listen
    try:
        settings = load_settings(**overrides)
    except ValidationError as error:
        # One line per problem, without the input (pydantic's would echo secrets).
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            print(f"watchword: invalid setting {where}: {problem['msg']}", file=sys.stderr)
        return 2
    except SettingsError as error:
        print(f"watchword: {error}", file=sys.stderr)
        return 2
    try:
        if arguments.command == "serve" and arguments.workers > 1:
            if settings.is_embedded:
                raise CommandError(
                    "--workers needs PostgreSQL (set database_url): the embedded SQLite "
                    "file is served by one process"
                )
            return supervise(settings.listen, arguments.workers, grace=settings.grace_period)
        if arguments.command == "serve":
            asyncio.run(_serve(settings, reuse_port=arguments.reuse_port))
        elif arguments.command == "migrate":
            asyncio.run(_migrate(settings))
            print("watchword: the database schema is up to date")
        elif arguments.command == "keys":
            asyncio.run(_keys(settings, arguments))
        elif arguments.command == "users":
            asyncio.run(_users(settings, arguments))
        elif arguments.command == "mail":
            asyncio.run(_mail(settings, arguments))
        elif arguments.command == "import-emmett":
            return asyncio.run(import_emmett(settings, arguments))
    except (
        StartupError,
        CommandError,
        AddressInUse,
        MigrationRefused,
        EmmettSourceError,
    ) as error:
        print(f"watchword: {error}", file=sys.stderr)
        return 1
    except RowTaken as error:
        print(f"watchword: {error}; nothing was written: run the import again", file=sys.stderr)
        return 1
    except DependencyUnavailable as error:  # before DomainError, which it is
        print(f"watchword: {error}", file=sys.stderr)
        return 1
    except DomainError as error:
        print(f"watchword: {error.reason.value}: {error.detail or error}", file=sys.stderr)
        return 1
    return 0
