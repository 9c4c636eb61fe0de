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
from watchword_server.app import StartupError, WatchwordServer, check_schema, tls_credentials
from watchword_server.commands import CommandError
from watchword_server.commands.settings import settings_table
from watchword_server.commands.users import STATUS_COMMANDS, change_status, list_users
from watchword_server.config import Settings, SettingsError, load_settings
from watchword_server.domain.access.service_keys import KeyNameTaken, KeyNotFound, Scope
from watchword_server.domain.admin.users import NewUser
from watchword_server.domain.common.clock import SystemClock
from watchword_server.domain.common.paging import MAX_PAGE_SIZE
from watchword_server.emmett_command import add_parser as add_import_emmett_parser
from watchword_server.emmett_command import import_emmett
from watchword_server.logs import configure_logging
from watchword_server.model.errors import DependencyUnavailable, DomainError
from watchword_server.model.records import CallContext, UserStatus
from watchword_server.runtime.mail_transports import LogTransport
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.emmett_source import EmmettSourceError
from watchword_server.storage.repositories.emmett_imports import RowTaken
from watchword_server.storage.schema import MigrationRefused, current_revision, upgrade
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
    stopping.clear()
    await server.drain(cut_short=stopping)  # a second signal ends the drain at once
    _log.info("shutting down: finishing calls in flight")
    await server.stop()


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        before = await current_revision(engine)
        await upgrade(engine)
        after = await current_revision(engine)
    finally:
        await engine.dispose()
    if before == after:
        print(f"watchword: the database schema is up to date (revision {after})")
    else:
        print(f"watchword: the database schema is migrated from {before or 'empty'} to {after}")


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
            subject = arguments.client_subject
            try:
                secret = await keys.create(
                    arguments.name, Scope(arguments.scope), client_subject=subject
                )
            except KeyNameTaken:
                raise CommandError(f"a key named {arguments.name!r} exists already") from None
            bound = "" if subject is None else f" for client certificate {subject!r}"
            print(
                f"created {arguments.scope} key {arguments.name!r}{bound}; its secret, shown once:"
            )
            print(secret)
        elif arguments.keys_command == "list":
            for key in await keys.list():
                used = key.last_used_time.isoformat() if key.last_used_time else "never"
                bound = "" if key.client_subject is None else f"\tclient {key.client_subject}"
                print(
                    f"{key.name}\t{key.scope}\tcreated {key.create_time.isoformat()}"
                    f"\tlast used {used}{bound}"
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
    command = arguments.users_command
    async with _domain(settings) as domain:
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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    # Every command that reads settings can be pointed at a file, and `--help` says what
    # the command does, not only its arguments.
    command = commands.add_parser(name, help=summary, description=summary)
    command.add_argument(
        "--config", metavar="FILE", help="a TOML settings file (instead of WATCHWORD_CONFIG)"
    )
    return command


def _group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    group = commands.add_parser(name, help=summary, description=summary)
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchword",
        description="Watchword authentication and authorization service. Settings come "
        "from WATCHWORD_* environment variables and the TOML file named by WATCHWORD_CONFIG "
        "(or --config); `watchword settings` lists them all.",
    )
    parser.add_argument("--version", action="version", version=f"watchword {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = _command(commands, "serve", "serve gRPC on the `listen` address")
    serve.add_argument("--listen", metavar="HOST:PORT", help="overrides the `listen` setting")
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="server processes sharing the port (PostgreSQL only; about one per core)",
    )
    # A worker of `--workers`: join the address the supervisor checked (SO_REUSEPORT).
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    _command(commands, "migrate", "bring the database schema up to date (needs no hmac_key)")
    commands.add_parser(
        "settings",
        help="list every setting, its environment variable and its default",
        description="List every setting, its environment variable and its default (the "
        "TOML key is the setting's name; messages.X is key X of the [messages] table).",
    )

    key_commands = _group(commands, "keys", "manage the service keys of calling services")
    create = _command(key_commands, "create", "create a key; prints its secret once")
    create.add_argument("name", help="the key's name, unique")
    create.add_argument("--scope", choices=[scope.value for scope in Scope], required=True)
    create.add_argument(
        "--client-subject",
        metavar="SUBJECT",
        help="accept the key only from a client whose verified certificate has this subject "
        "(RFC 4514, e.g. 'CN=billing,O=Example'; needs tls_client_ca_file)",
    )
    _command(key_commands, "list", "list keys (never their secrets)")
    revoke = _command(key_commands, "revoke", "revoke a key at once")
    revoke.add_argument("name", help="the key's name")

    mail_commands = _group(commands, "mail", "see and retry mail that was given up")
    _command(mail_commands, "dead", "list mails given up after mail_max_attempts")
    retry = _command(mail_commands, "retry", "send given-up mails again")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="ids from `mail dead`")
    retry.add_argument("--all", action="store_true", help="every mail that was given up")

    user_commands = _group(commands, "users", "manage users from the command line")
    create_user = _command(
        user_commands, "create", "create an active user; the password is read from standard input"
    )
    create_user.add_argument("email", metavar="EMAIL")
    create_user.add_argument("--first-name", default="")
    create_user.add_argument("--last-name", default="")
    create_user.add_argument(
        "--group", action="append", default=[], help="a group to join (created if missing)"
    )
    for name, (_, summary) in STATUS_COMMANDS.items():
        _command(user_commands, name, summary).add_argument("email", metavar="EMAIL")
    list_users = _command(
        user_commands, "list", "list accounts (email, status, created), oldest first"
    )
    list_users.add_argument(
        "--status", choices=[status.value for status in UserStatus], help="only this status"
    )
    list_users.add_argument(
        "--page-size",
        type=_positive,
        default=MAX_PAGE_SIZE,
        metavar="N",
        help=f"accounts read per query (default and most: {MAX_PAGE_SIZE})",
    )
    add_import_emmett_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic says which dialect it drives at every schema check; `migrate` says what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if arguments.command == "settings":
        print(settings_table())  # the defaults: it needs no valid settings, nor reads them
        return 0
    if arguments.config is not None:
        if not os.path.isfile(arguments.config):
            print(f"watchword: --config {arguments.config}: no such file", file=sys.stderr)
            return 2
        # Through the environment, so the workers of `serve --workers` read it too.
        os.environ["WATCHWORD_CONFIG"] = arguments.config
    overrides: dict[str, object] = {}
    if arguments.command == "serve" and arguments.listen is not None:
        overrides["listen"] = arguments.listen
    try:
        # Changing the schema hashes nothing: `migrate` needs no pepper.
        settings = load_settings(schema_only=arguments.command == "migrate", **overrides)
    except ValidationError as error:
        # One line per problem, without the input (pydantic's would echo secrets).
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "settings"
            print(f"watchword: invalid setting {where}: {problem['msg']}", file=sys.stderr)
        return 2
    except SettingsError as error:
        print(f"watchword: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        if arguments.command == "serve" and arguments.workers > 1:
            if settings.is_embedded:
                raise CommandError(
                    "--workers needs PostgreSQL (set database_url): the embedded SQLite "
                    "file is served by one process"
                )
            # Unusable TLS files: said once here, rather than by each worker dying at start.
            tls_credentials(settings)
            # Each worker drains, then finishes its calls, before the supervisor gives up.
            stopping_time = settings.shutdown_drain_seconds + settings.grace_period
            return supervise(
                settings.listen,
                arguments.workers,
                grace=stopping_time,
                metrics_listen=settings.metrics_listen,
            )
        if arguments.command == "serve":
            asyncio.run(_serve(settings, reuse_port=arguments.reuse_port))
        elif arguments.command == "migrate":
            asyncio.run(_migrate(settings))
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
    except BrokenPipeError:
        # The reader left (`watchword users list | head`): stop quietly, and keep Python
        # from failing again as it flushes standard output at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0
