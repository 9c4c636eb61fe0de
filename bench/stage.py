"""Everything the scenarios run on: PostgreSQL, seeded databases, keys and servers.

PostgreSQL is found or started the way the tests do it (``tests.support.postgres``: a
configured URL, the local server, or a throwaway cluster), and each run gets databases of
its own, dropped at the end. Servers are started in groups (those the next scenarios need,
together, since start-up is mostly imports) and stopped after them; a server waiting for
its turn is idle, so it does not compete with the one being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import calls, seed
from bench.h2load import Call, Load, Run
from bench.h2load import run as h2load_run
from bench.options import PBKDF2_ALG, Options
from bench.server import BENCH_PEPPER, ServerProcess, ServerSpec, cli, serve
from bench.steal import StealGuard
from tests.support.net import free_port
from tests.support.postgres import connect, postgres_database, postgres_server
from watchword_server.storage.db import create_engine
from watchword_server.storage.schema import upgrade

__all__ = [
    "PBKDF2_EMAIL",
    "Database",
    "Driver",
    "Role",
    "SessionTally",
    "Stage",
    "cores",
    "open_stage",
    "progress",
    "server_settings",
]

PBKDF2_EMAIL = "pbkdf2@bench.example"
_KEY_NAME = "bench"
_STARTED = time.monotonic()


def progress(message: str) -> None:
    """Say what the benchmark is doing (standard error, so the table stays clean)."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Database:
    """A migrated, seeded database with a service key of scope ``access``."""

    url: str
    seeded: seed.Seeded
    access_key: str


class SessionTally:
    """Counts sessions: each successful login makes one (an h2load :class:`Tally`)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url

    def count(self) -> int:
        """Sessions in the database now."""
        with connect(self._url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM sessions").fetchone()
        assert row is not None
        return int(row[0])


def cores() -> int:
    """The cores this process may run on (what the server, PostgreSQL and h2load share)."""
    return len(os.sched_getaffinity(0))


def server_settings(
    options: Options, *, caches: bool = True, key_cache: bool = True
) -> dict[str, str]:
    """An everyday server's settings: the seeded users' hash; the check cache as shipped
    or off, and the service-key cache as shipped or off."""
    settings = {"hmac_alg": options.login_alg}
    if not caches:
        settings["check_cache_max_staleness"] = "0"
    if not key_cache:
        settings["service_key_cache_max_staleness"] = "0"
    return settings


class Driver:
    """Runs calls against one server, warming each up (unmeasured) before its first run."""

    def __init__(self, server: ServerProcess, options: Options) -> None:
        self.server = server
        self._options = options
        self._warm: set[tuple[str, bytes, Load]] = set()

    def run(self, call: Call, load: Load, duration: float | None = None) -> Run:
        """One measured run of ``call`` for ``duration`` (the options' by default)."""
        key = (call.method, call.request.SerializeToString(), load)
        if key not in self._warm and self._options.warmup > 0:
            h2load_run(self.server.target, call, load=load, duration=self._options.warmup)
            self._warm.add(key)
        return h2load_run(
            self.server.target, call, load=load, duration=duration or self._options.duration
        )


@dataclass(frozen=True)
class Role:
    """A server a scenario needs: its settings, database (the everyday one by default)
    and ``--workers``."""

    settings: Mapping[str, str]
    database: Database | None = None
    workers: int = 1
    wrapper: tuple[str, ...] = ()


class Stage:
    """The run's PostgreSQL server, its everyday database, and a way to start servers."""

    def __init__(
        self,
        options: Options,
        postgres_url: str,
        logs: Path,
        databases: contextlib.ExitStack,
    ) -> None:
        self.options = options
        self.postgres_url = postgres_url
        self.logs = logs
        self.keep_logs = False
        """Set when something failed: the server logs are then kept for a reader."""
        self._databases = databases
        self._session_token: str | None = None
        self.steal = StealGuard(options.max_steal / 100)
        """Every scenario's triples are counted through this guard (``bench/steal.py``)."""
        self.everyday = self._database("small", options.users, key_from=None)
        seed.add_user(self.everyday.url, PBKDF2_EMAIL, seed.password_hash(PBKDF2_ALG, BENCH_PEPPER))

    def database(self, name: str, users: int) -> Database:
        """A new database of ``users`` seeded users, dropped when the stage closes, with
        the everyday database's service key."""
        return self._database(name, users, key_from=self.everyday)

    def _database(self, name: str, users: int, *, key_from: Database | None) -> Database:
        url = self._databases.enter_context(
            postgres_database(f"watchword_bench_{name}", server_url=self.postgres_url)
        )
        asyncio.run(_migrate(url))
        progress(f"seeding {users:,} users into the {name} database")
        seeded = seed.seed(
            url,
            users=users,
            memberships_per_user=self.options.memberships_per_user,
            hmac_alg=self.options.login_alg,
            pepper=BENCH_PEPPER,
        )
        progress(
            f"seeded {seeded.users:,} users and {seeded.memberships:,} memberships "
            f"in {seeded.seconds:.1f}s"
        )
        if key_from is None:
            output = cli(url, "keys", "create", _KEY_NAME, "--scope", "access")
            return Database(url, seeded, output.strip().splitlines()[-1])
        # The same key as key_from's: a CLI start-up saved (the servers share the pepper
        # that the key's stored digest is made with).
        seed.copy_service_key(key_from.url, url, _KEY_NAME)
        return Database(url, seeded, key_from.access_key)

    @contextlib.contextmanager
    def servers(self, roles: Mapping[str, Role]) -> Iterator[dict[str, ServerProcess]]:
        """Servers by name, started together and stopped together."""
        progress(f"starting servers: {', '.join(roles)}")
        specs = [
            ServerSpec(
                database_url=(role.database or self.everyday).url,
                port=free_port(),
                log=self.logs / f"server-{name.replace(' ', '-')}.log",
                settings=role.settings,
                workers=role.workers,
                wrapper=role.wrapper,
            )
            for name, role in roles.items()
        ]
        with serve(specs) as started:
            yield dict(zip(roles, started, strict=True))

    @contextlib.contextmanager
    def server(self, name: str, settings: Mapping[str, str]) -> Iterator[ServerProcess]:
        """One server on the everyday database with ``settings``."""
        with self.servers({name: Role(settings)}) as started:
            yield started[name]

    def session_token(self, server: ServerProcess) -> str:
        """A session of the checked user (one login, shared by every everyday server)."""
        if self._session_token is None:
            self._session_token = calls.login(
                server.target, self.everyday.seeded.checked_email, seed.BENCH_PASSWORD
            )
        return self._session_token


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def open_stage(options: Options) -> Iterator[Stage]:
    """PostgreSQL (found or started as the tests do) and the everyday database.

    Server logs go to a temporary directory that is kept, and named, if anything failed.
    """
    logs = Path(tempfile.mkdtemp(prefix="watchword-bench-logs-"))
    keep = True
    try:
        with postgres_server() as postgres_url, contextlib.ExitStack() as databases:
            stage = Stage(options, postgres_url, logs, databases)
            yield stage
            keep = stage.keep_logs
    finally:
        if keep:
            progress(f"server logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
