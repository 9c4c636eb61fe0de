"""A few PostgreSQL connections that run named prepared statements, for the hot path.

Why not a psycopg pool: on these machines a round trip through psycopg's asyncio API costs
~160-200 us of CPU on the event loop (most of it its wait machinery: a reader added and
removed, a timer and a future per wait), and asyncpg measured the same. A check is worth
~400 us of the gRPC stack in all, so that alone would more than halve throughput with the
cache off. Here each connection keeps one reader registered for good and talks libpq
through psycopg's own binding (``psycopg.pq``): ~50-65 us per round trip. Connections are
still opened by psycopg, and values are still converted by psycopg's loaders
(``psycopg.adapt.Transformer``); only the wait is ours.

Each connection runs one request at a time, in libpq's pipeline mode: a request is one or
more statements sent together and ended by one Sync, so they cost one round trip and run in
one implicit transaction (committed at the Sync, rolled back whole if one fails; that is
how a login reads and takes its place in one visit). A request of one statement is what
autocommit would run. A request may also hold session locks around its transaction, in
groups of their own but still one round trip (``transaction(..., holding=...)``). A request
that loses to a concurrent transaction (serialization failure, deadlock) is sent again
(``storage.conflicts``). A connection that breaks is dropped and the call fails with
DatabaseUnavailable; the next call opens a new one. A caller that stops waiting (a client's
deadline) costs no connection: its request is answered and the answer dropped, unless it
held session locks, whose fate it can then no longer learn (the session is ended).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from watchword_server.storage.conflicts import retrying
from watchword_server.storage.db import Database, DatabaseUnavailable

__all__ = [
    "APPLICATION_NAME",
    "PgStatement",
    "PreparedPool",
    "StatementFailed",
    "compile_statement",
    "conninfo_for",
]

APPLICATION_NAME = "watchword-prepared"
"""The ``application_name`` of the pool's connections (see ``pg_stat_activity``)."""


@dataclass(frozen=True)
class PgStatement:
    """A statement compiled for PostgreSQL: its name, SQL with ``$1``… parameters, the
    order its named parameters go in, and the values of its constants."""

    name: str
    sql: str
    order: tuple[str, ...]
    defaults: Mapping[str, Any]

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        """``values`` (and the constants) in the order of the statement's parameters."""
        return [values[name] if name in values else self.defaults[name] for name in self.order]


def compile_statement(name: str, statement: ClauseElement) -> PgStatement:
    """Compile a SQLAlchemy statement (with named bind parameters) for ``PreparedPool``."""
    # asyncpg's dialect only for its "$1" placeholders; nothing of asyncpg is loaded.
    compiled = statement.compile(dialect=pg_asyncpg.dialect())  # type: ignore[no-untyped-call]
    assert isinstance(compiled, SQLCompiler)  # noqa: S101 - a statement compiles to one
    return PgStatement(
        name=name,
        sql=compiled.string,
        order=tuple(compiled.positiontup or ()),
        defaults=dict(compiled.params),
    )


def conninfo_for(database: Database) -> str:
    """A libpq connection string for ``database`` (password included)."""
    url = database.engine.url.set(drivername="postgresql")
    params: dict[str, Any] = {
        "connect_timeout": "10",
        **conninfo_to_dict(url.render_as_string(hide_password=False)),
    }
    params["application_name"] = APPLICATION_NAME
    return make_conninfo("", **params)


class StatementFailed(Exception):
    """PostgreSQL refused a statement (not a connection problem); ``sqlstate`` says why."""

    def __init__(self, message: str, sqlstate: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# What a statement may fail with that running it again can cure: a serialization failure
# or deadlock (class 40), a lock or statement timeout, a server shutting down or starting.
_TRANSIENT = ("40", "55P03", "57014", "57P01", "57P02", "57P03")


def _failure(error: StatementFailed, what: str) -> Exception:
    """The exception a refused statement becomes: transient ones are the database's
    (UNAVAILABLE, retry), others a bug of ours."""
    if error.sqlstate.startswith(_TRANSIENT):
        return DatabaseUnavailable(f"{what} could not run now ({error.sqlstate}): {error}")
    return RuntimeError(f"{what} failed ({error.sqlstate}): {error}")


_Step = tuple[PgStatement, Mapping[str, Any]]
_Group = Sequence[tuple[bytes, Sequence[Any]]]


def _encoded(step: _Step) -> tuple[bytes, Sequence[Any]]:
    statement, values = step
    return statement.name.encode(), statement.parameters(values)


# Results of a statement that ran (PIPELINE_ABORTED: skipped after an earlier one failed,
# whose own error is the one reported).
_DONE = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.PIPELINE_ABORTED)


def _encode(value: Any) -> tuple[bytes | None, int]:
    """A parameter in libpq's terms: its bytes and format (0 text, 1 binary)."""
    if value is None:
        return None, 0
    if isinstance(value, bytes):
        return value, 1  # bytea, sent as is
    if isinstance(value, bool):
        return (b"t" if value else b"f"), 0
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware datetime")
        return value.isoformat().encode(), 0
    if isinstance(value, uuid.UUID | str | int):
        return str(value).encode(), 0
    raise TypeError(f"cannot send a {type(value).__name__} to a prepared statement")


class _Request:
    """A request on its way: the caller's future, the Syncs still due, and the answers so
    far (one list of results per statement)."""

    __slots__ = ("answer", "answers", "future", "syncs_due")

    def __init__(self, future: asyncio.Future[list[list[pq.abc.PGresult]]], syncs: int) -> None:
        self.future = future
        self.syncs_due = syncs
        self.answers: list[list[pq.abc.PGresult]] = []
        self.answer: list[pq.abc.PGresult] = []


class _Connection:
    """One libpq connection in pipeline mode with a reader registered for its whole life.

    PostgreSQL answers requests in the order they were sent, so each result belongs to the
    oldest request not yet answered. A caller that stops waiting (cancelled: a client's
    deadline) leaves its request in that queue, to be answered and dropped: the connection
    stays good, and the next request, sent behind it, gets its own answer.
    """

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._connection = connection
        self._pg = connection.pgconn
        self._transformer = Transformer(connection)
        self._loop = asyncio.get_running_loop()
        self._requests: collections.deque[_Request] = collections.deque()  # oldest first
        self._writing = False  # what libpq still holds is sent when the socket is writable
        self.broken = False
        self._socket = self._pg.socket

    @property
    def busy(self) -> bool:
        """Whether a request (a cancelled caller's) is still on its way."""
        return bool(self._requests)

    def _readable(self) -> None:
        try:
            self._pg.consume_input()
            requests = self._requests
            while not self._pg.is_busy():
                result = self._pg.get_result()
                if not requests:
                    if result is not None:  # an answer nobody asked for: out of step
                        self._break(None)
                    break
                head = requests[0]
                if result is None:  # a statement's results are complete, or none are due
                    if not head.answer:
                        break
                    head.answers.append(head.answer)
                    head.answer = []
                elif result.status == pq.ExecStatus.PIPELINE_SYNC:  # a group is done
                    head.syncs_due -= 1
                    if head.syncs_due <= 0:  # and with it the request
                        requests.popleft()
                        if not head.future.done():  # its caller may have stopped waiting
                            head.future.set_result(head.answers)
                else:
                    head.answer.append(result)
        except psycopg.Error as error:
            self._break(error)
        if self._pg.status != pq.ConnStatus.OK:
            self._break(None)

    def _flush(self) -> None:
        # Sends what libpq holds; what the kernel does not take now goes when the socket is
        # writable again (this callback, on the loop: no caller waits for it, so none can
        # be cancelled half-way through a request).
        if self.broken:
            return
        try:
            pending = self._pg.flush() == 1
        except psycopg.Error as error:
            self._break(error)
            return
        if pending and not self._writing:
            self._writing = True
            self._loop.add_writer(self._socket, self._flush)
        elif not pending and self._writing:
            self._writing = False
            self._loop.remove_writer(self._socket)

    def _break(self, error: BaseException | None) -> None:
        if not self.broken:
            self.broken = True
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._socket)
                if self._writing:
                    self._loop.remove_writer(self._socket)
        requests, self._requests = self._requests, collections.deque()
        for request in requests:
            if not request.future.done():
                request.future.set_exception(
                    DatabaseUnavailable(f"the database connection broke: {error or ''}")
                )

    async def run(
        self, groups: Sequence[_Group]
    ) -> tuple[list[list[tuple[Any, ...]]], list[StatementFailed | None]]:
        """Run ``groups`` of statements (names and parameters) as one request, each group
        ended by a Sync (its own implicit transaction); the rows of every statement, and
        each group's refusal or None (nothing of a refused group took effect).

        Raises:
            StatementFailed: PostgreSQL refused a statement of a request of one group.
            DatabaseUnavailable: the connection broke.
        """
        if self.broken:
            raise DatabaseUnavailable("the database connection broke")
        request = _Request(self._loop.create_future(), len(groups))
        self._requests.append(request)
        count = 0
        try:
            for statements in groups:
                for name, parameters in statements:
                    values, formats = [], []
                    for parameter in parameters:
                        value, binary = _encode(parameter)
                        values.append(value)
                        formats.append(binary)
                    self._pg.send_query_prepared(name, values, formats)
                    count += 1
                self._pg.pipeline_sync()
        except psycopg.Error as error:
            self._break(error)
        self._flush()
        answers = await request.future
        if len(answers) != count:
            self._break(None)  # out of step with the server: never trust it again
            raise DatabaseUnavailable("the database connection lost track of its answers")
        rows: list[list[tuple[Any, ...]]] = []
        failures: list[StatementFailed | None] = []
        for statements in groups:
            failure: StatementFailed | None = None
            for answer in answers[len(rows) : len(rows) + len(statements)]:
                loaded: list[tuple[Any, ...]] = []
                for result in answer:
                    if result.status == pq.ExecStatus.TUPLES_OK:
                        self._transformer.set_pgresult(result)
                        loaded = self._transformer.load_rows(0, result.ntuples, tuple)
                    elif result.status not in _DONE and failure is None:
                        message = (result.error_message or b"").decode(errors="replace")
                        code = result.error_field(pq.DiagnosticField.SQLSTATE)
                        failure = StatementFailed(
                            message.strip(), (code or b"").decode(errors="replace")
                        )
                rows.append(loaded)
            failures.append(failure)
        if len(groups) == 1 and failures[0] is not None:
            raise failures[0]
        return rows, failures

    def drop(self) -> None:
        """Never use this connection again (closing it ends whatever its session holds)."""
        self._break(None)

    async def start(self, statements: Mapping[str, str]) -> None:
        """Prepare ``statements`` (through psycopg), then take the connection over."""
        # Timestamps then arrive in UTC, which psycopg gives datetime.timezone.utc: no
        # zoneinfo lookup and no conversion per value (a server's default is often
        # 'Etc/UTC', a ZoneInfo). A SET, not a startup option, passes through poolers.
        await self._connection.execute("SET TIME ZONE 'UTC'")
        self._transformer = Transformer(self._connection)
        for name, sql in statements.items():
            await self._connection.execute(f"PREPARE {name} AS {sql}")
        # From here on only this reader waits on the socket (psycopg's waits would replace
        # it and then remove it).
        self._pg.nonblocking = 1
        self._pg.enter_pipeline_mode()
        self._loop.add_reader(self._socket, self._readable)

    async def close(self) -> None:
        self._break(None)  # and whoever still waits for an answer hears so
        with contextlib.suppress(psycopg.Error, OSError):
            await self._connection.close()


class PreparedPool:
    """Up to ``size`` connections, each with every statement prepared.

    Args:
        conninfo: libpq connection string.
        statements: what to prepare on each connection (names are SQL identifiers).
        size: most connections open at once; calls beyond wait for a free one.
    """

    def __init__(self, conninfo: str, statements: Sequence[PgStatement], *, size: int) -> None:
        self._conninfo = conninfo
        self._statements = {statement.name: statement.sql for statement in statements}
        self._size = size
        self._idle: collections.deque[_Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._opened = 0
        self._closed = False

    async def fetch_one(
        self, statement: PgStatement, values: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of ``statement`` run with ``values``, or None.

        Raises:
            DatabaseUnavailable: no connection could be had, or it broke meanwhile, or the
                statement failed in a way a retry may cure (a serialization failure...).
            RuntimeError: PostgreSQL refused the statement (a bug of ours, not the caller's).
        """
        try:
            rows = await self.fetch(statement.name, statement.parameters(values))
        except StatementFailed as error:
            raise _failure(error, statement.name) from error
        return rows[0] if rows else None

    async def fetch(self, name: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Run prepared statement ``name`` with ``parameters``; returns its rows.

        Raises:
            DatabaseUnavailable: no connection could be had, or it broke meanwhile.
            StatementFailed: PostgreSQL refused the statement.
        """
        rows, _ = await self._request([[(name.encode(), parameters)]])
        return rows[0]

    async def transaction(
        self, steps: Sequence[_Step], *, holding: tuple[_Step, _Step] | None = None
    ) -> list[list[tuple[Any, ...]]]:
        """Run ``steps`` (statements with their values) in order in one transaction and one
        round trip; the rows of each. Each statement sees what the ones before it did.

        ``holding`` is a pair of statements that take and give back session locks: the
        first runs before the transaction begins, the second after it ends (whether it
        committed or not), in the same round trip. Under REPEATABLE READ or SERIALIZABLE a
        transaction's snapshot is taken at its first statement, so a lock taken inside it
        would come too late to let it see what the lock's last holder committed. If the
        lock cannot be taken, the transaction must fail too (its first step checks).

        Raises:
            DatabaseUnavailable: no connection could be had, or it broke meanwhile, or a
                statement failed in a way a retry may cure; nothing was done.
            RuntimeError: PostgreSQL refused a statement (a bug of ours); nothing was done.
        """
        groups = [[_encoded(step) for step in steps]]
        if holding is not None:
            groups = [[_encoded(holding[0])], groups[0], [_encoded(holding[1])]]
        try:
            rows, _ = await self._request(groups, holding=holding is not None)
        except StatementFailed as error:
            raise _failure(error, ", ".join(step.name for step, _ in steps)) from error
        return rows[1:-1] if holding is not None else rows

    async def _request(
        self, groups: Sequence[_Group], *, holding: bool = False
    ) -> tuple[list[list[tuple[Any, ...]]], list[StatementFailed | None]]:
        return await retrying(lambda: self._request_once(groups, holding))

    async def _request_once(
        self, groups: Sequence[_Group], holding: bool
    ) -> tuple[list[list[tuple[Any, ...]]], list[StatementFailed | None]]:
        connection = await self._take()
        try:
            rows, failures = await connection.run(groups)
            if holding:  # a lock, the transaction, the unlock
                taking, work, giving_back = failures
                if taking is not None or giving_back is not None:
                    # The locks may outlive the request on this session: end the session.
                    connection.drop()
                # The lock's refusal is the cause (the transaction then refuses to run);
                # a failed unlock alone leaves the transaction's work done and good.
                failure = taking or work
                if failure is not None:
                    raise failure
            return rows, failures
        except asyncio.CancelledError:
            if holding:  # whether its locks were given back will never be known here
                connection.drop()
            raise
        finally:
            # A cancelled caller's request may still be on its way: the next one is sent
            # behind it and gets its own answer (see _Connection).
            self._give_back(connection)

    async def _take(self) -> _Connection:
        while True:
            if self._closed:
                raise DatabaseUnavailable("the check connections are closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.broken:
                    return connection
                self._forget(connection)
            if self._opened < self._size:
                self._opened += 1
                try:
                    return await self._open()
                except BaseException:
                    self._opened -= 1
                    raise
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    self._give_back(waiter.result())  # type: ignore[arg-type]
                raise
            if handed is not None:
                return handed
            # None: a connection was dropped, so one may be opened in its place.

    def _give_back(self, connection: _Connection) -> None:
        if connection.broken or self._closed:
            self._forget(connection)
            self._wake(None)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection.busy:  # taken last: whoever takes it waits for the answer before
            self._idle.appendleft(connection)
        else:
            self._idle.append(connection)

    def _wake(self, handed: _Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return

    def _forget(self, connection: _Connection) -> None:
        self._opened -= 1
        asyncio.ensure_future(connection.close())

    async def _open(self) -> _Connection:
        try:
            raw = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except (psycopg.Error, OSError) as error:
            raise DatabaseUnavailable(f"cannot connect to the database: {error}") from error
        connection = _Connection(raw)
        try:
            await connection.start(self._statements)
        except BaseException:
            await connection.close()
            raise
        return connection

    def use(self) -> tuple[int, int]:
        """Connections in use (open and not idle), and the most it opens."""
        return self._opened - len(self._idle), self._size

    async def warm(self) -> None:
        """Open one connection now, so the first calls do not wait for it (best effort:
        a failure here is the first call's to report)."""
        with contextlib.suppress(DatabaseUnavailable):
            self._give_back(await self._take())

    async def close(self) -> None:
        """Close every connection; calls after this fail with DatabaseUnavailable."""
        self._closed = True
        while self._idle:
            await self._idle.pop().close()
        while self._waiters:
            self._wake(None)
