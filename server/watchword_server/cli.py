"""The ``watchword`` command: ``serve``, ``migrate``, ``keys``, ``users``, ``mail``,
``settings`` and ``import-emmett``.

This module declares the arguments and dispatches; each command is a module of
``commands/``, imported when it runs. What is imported here at the top is what every start
pays for, ``--help`` included: keep it to what declaring the arguments needs
(``tests/unit/test_cli_imports.py`` checks).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from watchword_server import __version__
from watchword_server.commands import CommandError
from watchword_server.commands.users import STATUS_COMMANDS
from watchword_server.domain.common.paging import MAX_PAGE_SIZE
from watchword_server.model.errors import DependencyUnavailable, DomainError
from watchword_server.model.records import Scope, UserStatus

if TYPE_CHECKING:
    from watchword_server.config import Settings

__all__ = ["main"]


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
    _import_emmett_parser(commands)
    return parser


def _import_emmett_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "import-emmett",
        help="bring an Emmett 2.8 app's users, groups, grants and events in",
        description="Import users (with their password hashes and statuses), groups, "
        "memberships, permissions and events from an Emmett 2.8 database. Running it again "
        "adds only what is new. See docs/import-emmett.md.",
    )
    command.add_argument(
        "--config", metavar="FILE", help="a TOML settings file (instead of WATCHWORD_CONFIG)"
    )
    command.add_argument(
        "source_url",
        metavar="SOURCE_URL",
        help="the Emmett database: sqlite:///path/to/app.sqlite or postgresql://user@host/db",
    )
    command.add_argument(
        "--user-table",
        default="auth_users",
        metavar="NAME",
        help="the table of the app's user model (default auth_users)",
    )
    command.add_argument(
        "--dry-run", action="store_true", help="report what would be imported; write nothing"
    )
    command.add_argument(
        "--skip-conflicts",
        action="store_true",
        help="import the rest when some users cannot be (addresses that collide once case is "
        "ignored, invalid addresses or fields); without it such a run writes nothing",
    )
    command.add_argument(
        "--source",
        metavar="NAME",
        help="the name under which this source's rows are remembered (default: its URL "
        "without password); keep it the same across runs",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic says which dialect it drives at every schema check; `migrate` says what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if arguments.command == "settings":
        from watchword_server.commands.settings import settings_table

        print(settings_table())  # the defaults: it needs no valid settings, nor reads them
        return 0
    # Imported only now, as each command's own modules are in _run: `--help` and
    # `settings` need none of them, and only `serve` needs the server and gRPC.
    from pydantic import ValidationError

    from watchword_server.config import SettingsError, load_settings
    from watchword_server.logs import configure_logging
    from watchword_server.startup import StartupError

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
        return _run(settings, arguments)
    except (StartupError, CommandError) as error:
        print(f"watchword: {error}", file=sys.stderr)
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


def _run(settings: Settings, arguments: argparse.Namespace) -> int:
    # Each command imports its modules when it runs: what `users list` needs is the domain
    # and storage, not the server. Each turns its own expected failures into CommandError.
    command = arguments.command
    if command == "serve":
        from watchword_server.commands import serve

        return serve.run(settings, arguments)
    if command == "migrate":
        from watchword_server.commands import migrate

        return migrate.run(settings, arguments)
    if command == "keys":
        from watchword_server.commands import keys

        return keys.run(settings, arguments)
    if command == "users":
        from watchword_server.commands import users

        return users.run(settings, arguments)
    if command == "mail":
        from watchword_server.commands import mail

        return mail.run(settings, arguments)
    if command == "import-emmett":
        from watchword_server.commands import import_emmett

        return import_emmett.run(settings, arguments)
    raise AssertionError(f"no such command: {command}")  # argparse allows only the above
