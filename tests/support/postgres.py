"""Brand-new, empty PostgreSQL databases for tests.

``postgres_database()`` yields a SQLAlchemy URL (``postgresql+psycopg://...``) to a database
created for the caller and dropped (``WITH (FORCE)``) on exit. The server comes from, in order:

1. ``WATCHWORD_TEST_DATABASE_URL``: a SQLAlchemy URL, libpq URI or libpq ``key=value``
   string for a server where we may ``CREATE DATABASE``. Used as given; if it does not
   work, that is an error rather than a reason to fall back.
2. A server on ``127.0.0.1:5432`` that lets user ``postgres`` in within ~2 seconds.
3. A throwaway cluster (``initdb`` + ``pg_ctl``) from the installed server binaries, in a
   temp dir, on a free port; stopped and deleted on exit. As root, the binaries run as
   the ``postgres`` user via ``runuser``, because they refuse to run as root.

``WATCHWORD_TEST_ISOLATION`` (``serializable``, ``repeatable-read`` or ``read-committed``,
PostgreSQL's default) sets every created database's ``default_transaction_isolation``, so a
suite can run as it would on CockroachDB or YugabyteDB (``make test-serializable``).

``WATCHWORD_TEST_POSTGRES`` picks the strategy: ``auto`` (default) is the order above;
``throwaway`` skips 1 and 2, for CI machines whose local server must not be touched and
to exercise step 3 on a machine that has a server.

Starting a cluster takes a second or two, so a session-scoped fixture should hold
``postgres_server()`` open and pass its URL to ``postgres_database(server_url=...)``.
``connect()`` opens a plain psycopg connection from such a URL, for tests that read
tables directly. The source used is logged on this module's logger.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

__all__ = [
    "ISOLATION_ENV",
    "MODE_ENV",
    "URL_ENV",
    "ThrowawayCluster",
    "connect",
    "conninfo",
    "isolation_level",
    "postgres_database",
    "postgres_server",
]

logger = logging.getLogger(__name__)

URL_ENV = "WATCHWORD_TEST_DATABASE_URL"
MODE_ENV = "WATCHWORD_TEST_POSTGRES"
ISOLATION_ENV = "WATCHWORD_TEST_ISOLATION"
_MODES = ("auto", "throwaway")

_LOCAL_SERVER: Mapping[str, str] = {
    "host": "127.0.0.1",
    "port": "5432",
    "user": "postgres",
    "dbname": "postgres",
}
# libpq's minimum; a refused connection fails at once anyway.
_LOCAL_PROBE_TIMEOUT = "2"
# Postgres truncates longer identifiers silently, which would break the drop.
_MAX_IDENTIFIER_BYTES = 63
_DRIVER_RE = re.compile(r"^(postgres(?:ql)?)\+[\w-]+://")


def conninfo(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL (as yielded here) or libpq string."""
    return make_conninfo("", **_url_params(url))


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[TupleRow]:
    """Open a psycopg connection from a SQLAlchemy URL (as yielded here) or a libpq string."""
    return psycopg.connect(conninfo(url), autocommit=autocommit)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL to a server's maintenance database where we may CREATE DATABASE."""
    mode = os.environ.get(MODE_ENV, "").strip().lower() or "auto"
    if mode not in _MODES:
        raise ValueError(f"{MODE_ENV}={mode!r}: expected one of {', '.join(_MODES)}")

    if mode == "auto":
        configured = os.environ.get(URL_ENV, "").strip()
        if configured:
            params = _url_params(configured)
            logger.info("PostgreSQL from %s: %s", URL_ENV, _render(params, hide_password=True))
            yield _render(params)
            return
        if _local_server_answers():
            logger.info("PostgreSQL: local server at %s", _render(_LOCAL_SERVER))
            yield _render(_LOCAL_SERVER)
            return
    else:
        logger.info("PostgreSQL: %s=throwaway, skipping %s and 127.0.0.1:5432", MODE_ENV, URL_ENV)

    with _throwaway_cluster() as params:
        yield _render(params)


@contextlib.contextmanager
def postgres_database(
    prefix: str = "watchword_test", *, server_url: str | None = None
) -> Iterator[str]:
    """Yield a SQLAlchemy URL ("postgresql+psycopg://...") to a brand-new empty database,
    dropped on exit.

    Without ``server_url`` the server is found (or started) as the module docstring says,
    for this one database; pass a ``postgres_server()`` URL to share one server.
    """
    # Checked before a server is found or started, so a bad prefix fails fast.
    name = f"{prefix}_{secrets.token_hex(6)}"
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise ValueError(f"database name {name!r} is longer than 63 bytes; use a shorter prefix")
    if server_url is None:
        with postgres_server() as url, postgres_database(prefix, server_url=url) as db_url:
            yield db_url
        return

    server = _url_params(server_url)

    with _admin_connection(server) as conn:
        # template0: guaranteed empty even if template1 was customised on this server.
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )
        isolation = isolation_level()
        if isolation != "read committed":
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_isolation = {}").format(
                    sql.Identifier(name), sql.Literal(isolation)
                )
            )
    logger.info("created database %s", name)

    try:
        yield _render({**server, "dbname": name})
    except BaseException:
        # Don't let a failing drop hide the test's own exception.
        try:
            _drop_database(server, name)
        except psycopg.Error:
            logger.exception("could not drop database %s", name)
        raise
    _drop_database(server, name)


_ISOLATIONS = ("read committed", "repeatable read", "serializable")


def isolation_level() -> str:
    """The isolation level ``WATCHWORD_TEST_ISOLATION`` asks for (PostgreSQL's words)."""
    asked = os.environ.get(ISOLATION_ENV, "").strip().lower()
    level = asked.replace("-", " ").replace("_", " ") or "read committed"
    if level not in _ISOLATIONS:
        raise ValueError(
            f"WATCHWORD_TEST_ISOLATION={asked!r}: use serializable, repeatable-read or "
            "read-committed"
        )
    return level


def _drop_database(server: Mapping[str, str], name: str) -> None:
    with _admin_connection(server) as conn:
        # FORCE: connections a test leaked (pools, forgotten sessions) must not block the drop.
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    logger.info("dropped database %s", name)


def _admin_connection(server: Mapping[str, str]) -> psycopg.Connection[TupleRow]:
    # CREATE/DROP DATABASE cannot run inside a transaction. The timeout keeps a
    # black-holed host from hanging the test run; the URL's own value wins.
    return psycopg.connect(
        make_conninfo("", **{"connect_timeout": "10", **server}), autocommit=True
    )


def _local_server_answers() -> bool:
    try:
        with psycopg.connect(
            make_conninfo("", **_LOCAL_SERVER, connect_timeout=_LOCAL_PROBE_TIMEOUT)
        ):
            return True
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1:] or ["?"]
        logger.info("no usable PostgreSQL at 127.0.0.1:5432 (%s)", reason[0])
        return False


# --- URLs ------------------------------------------------------------------------------


def _url_params(url: str) -> dict[str, str]:
    """libpq connection parameters from a SQLAlchemy URL, libpq URI or key=value string."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # key=value strings and multi-host URIs are libpq-only syntax.
        return {k: str(v) for k, v in conninfo_to_dict(_DRIVER_RE.sub(r"\1://", url)).items()}

    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string()}")
    args = parsed.translate_connect_args(username="user", database="dbname")
    params = {k: str(v) for k, v in args.items() if v is not None}
    if "host" in params:
        # SQLAlchemy keeps libpq's percent-encoded socket dirs ("%2Frun%2Fpostgresql") as is.
        params["host"] = unquote(params["host"])
    for key, value in parsed.query.items():
        # Repeated keys: libpq lets the last one win.
        params[key] = value if isinstance(value, str) else value[-1]
    return params


def _render(params: Mapping[str, str], *, hide_password: bool = False) -> str:
    """A SQLAlchemy psycopg URL for libpq parameters."""
    query = dict(params)
    host = query.pop("host", None)
    port = query.pop("port", None)
    url_host: str | None = None
    url_port: int | None = None
    # Socket dirs and multi-host lists only round-trip as query parameters.
    if host and "/" not in host and "," not in host and (port is None or port.isdigit()):
        url_host = host
        url_port = int(port) if port else None
    else:
        query.update({k: v for k, v in (("host", host), ("port", port)) if v})
    url = URL.create(
        "postgresql+psycopg",
        username=query.pop("user", None),
        password=query.pop("password", None),
        host=url_host,
        port=url_port,
        database=query.pop("dbname", None),
        query=query,
    )
    return url.render_as_string(hide_password=hide_password)


# --- throwaway cluster -----------------------------------------------------------------


class ThrowawayCluster:
    """A PostgreSQL cluster of the caller's own, in a temp dir: for the run's server when
    none is reachable, and for fault tests that stop and restart a database under a server
    (``stop`` and ``start`` keep its port and data). Use it as a context manager."""

    def __init__(self) -> None:
        self._bindir = _find_bindir()
        self._runner = _runner()
        self._tmp = Path(tempfile.mkdtemp(prefix="watchword-pg-"))
        self._data = self._tmp / "data"
        self.port = 0
        self.running = False

    @property
    def params(self) -> dict[str, str]:
        """libpq parameters of its maintenance database."""
        return {
            "host": "127.0.0.1",
            "port": str(self.port),
            "user": "postgres",
            "dbname": "postgres",
        }

    @property
    def url(self) -> str:
        """A SQLAlchemy URL of its maintenance database (for ``postgres_database``)."""
        return _render(self.params)

    def __enter__(self) -> ThrowawayCluster:
        started = time.monotonic()
        try:
            if self._runner:
                # initdb/postgres run as postgres, so it must own the data, socket and log dir.
                user = pwd.getpwnam("postgres")
                os.chown(self._tmp, user.pw_uid, user.pw_gid)
            _run(
                [
                    *self._runner,
                    str(self._bindir / "initdb"),
                    "-D",
                    str(self._data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                cwd=self._tmp,
                what="initdb",
            )
            self.port = _start_cluster(self._runner, self._bindir, self._tmp, self._data)
            self.running = True
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)
            raise
        logger.info(
            "PostgreSQL: throwaway cluster from %s on 127.0.0.1:%d in %s (up in %.1fs)",
            self._bindir,
            self.port,
            self._tmp,
            time.monotonic() - started,
        )
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` ends sessions cleanly, ``immediate`` is a crash)."""
        _stop_cluster(self._runner, self._bindir, self._tmp, self._data, mode=mode)
        self.running = False

    def start(self) -> None:
        """Start it again, on the same port."""
        _start_cluster(self._runner, self._bindir, self._tmp, self._data, port=self.port)
        self.running = True

    def __exit__(self, *_: object) -> None:
        try:
            if self.running:
                self.stop("immediate")  # nothing in a throwaway cluster needs a checkpoint
        finally:
            # Even if the stop failed: a postmaster whose postmaster.pid vanishes shuts
            # itself down.
            shutil.rmtree(self._tmp, ignore_errors=True)


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[dict[str, str]]:
    with ThrowawayCluster() as cluster:
        yield cluster.params


def _find_bindir() -> Path:
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
        )
        # Debian's pg_config comes with libpq-dev and may point at a dir without a server.
        if result.returncode == 0 and _has_server(Path(result.stdout.strip())):
            return Path(result.stdout.strip())
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if _has_server(Path(p))]
    if found:
        return max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)])
    raise RuntimeError(
        "no PostgreSQL server for tests: cannot start a throwaway cluster because no server "
        "binaries (initdb, pg_ctl, postgres) were found via `pg_config --bindir` or in "
        f"/usr/lib/postgresql/*/bin. Set {URL_ENV} to a server where the tests may "
        "CREATE DATABASE, e.g. postgresql+psycopg://user:password@host:5432/postgres, "
        "or install the PostgreSQL server package."
    )


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def _runner() -> list[str]:
    """Command prefix for initdb/pg_ctl: they refuse to run as root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        runuser = None
    if runuser is None:
        raise RuntimeError(
            "running as root, and initdb/pg_ctl refuse to: need `runuser` and a `postgres` "
            f"user to start a throwaway cluster. Or set {URL_ENV} to an existing server."
        )
    return [runuser, "-u", "postgres", "--"]


def _start_cluster(
    runner: Sequence[str], bindir: Path, tmp: Path, data: Path, *, port: int = 0
) -> int:
    log = tmp / "postgres.log"
    # Another process can grab the port between our probe and the bind; try a few (a
    # given port is tried once: a restart must come back where its clients look).
    wanted = port
    for _ in range(1 if wanted else 3):
        port = wanted or _free_port()
        log_offset = log.stat().st_size if log.exists() else 0
        options = " ".join(
            [
                # Socket in our dir: the default one may not exist or be writable.
                f"-k {shlex.quote(str(tmp))}",
                "-c listen_addresses=127.0.0.1",
                f"-p {port}",
                # Durability is pointless for a cluster deleted after the run.
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            ]
        )
        result = _run(
            [
                *runner,
                str(bindir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
            ],
            cwd=tmp,
            what="pg_ctl start",
            check=False,
        )
        if result.returncode == 0:
            return port
        new_log = _read_from(log, log_offset)
        if "Address already in use" not in new_log:
            raise RuntimeError(
                f"pg_ctl start failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"\n--- {log} ---\n{new_log[-4000:]}"
            )
        logger.info("port %d was taken before postgres could bind it; retrying", port)
    if wanted:
        raise RuntimeError(f"could not restart the throwaway PostgreSQL: port {wanted} is taken")
    raise RuntimeError("could not start a throwaway PostgreSQL: no free port after 3 tries")


def _stop_cluster(
    runner: Sequence[str], bindir: Path, tmp: Path, data: Path, *, mode: str = "immediate"
) -> None:
    result = _run(
        [*runner, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", mode, "-w"],
        cwd=tmp,
        what="pg_ctl stop",
        check=False,
    )
    if result.returncode != 0:
        logger.warning(
            "pg_ctl stop failed (%d): %s%s", result.returncode, result.stdout, result.stderr
        )


def _read_from(path: Path, offset: int) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(
    argv: Sequence[str], *, cwd: Path, what: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    # cwd: the postgres user may not be able to enter the caller's cwd (e.g. /root).
    result = subprocess.run(  # noqa: S603 - fixed argv built here, no shell
        list(argv), cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({result.returncode}): {shlex.join(argv)}\n"
            f"{result.stdout}{result.stderr}"
        )
    return result
