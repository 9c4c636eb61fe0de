"""``watchword import-emmett SOURCE_URL``: the command's face (progress bar and summary);
the work is ``domain.imports.emmett_import``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from watchword_server.app import SchemaNotReady, check_schema
from watchword_server.config import Settings
from watchword_server.domain.common.clock import SystemClock
from watchword_server.domain.imports.emmett_import import EmmettImport
from watchword_server.domain.imports.emmett_report import KINDS, ImportReport
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.emmett_source import describe_source, read_emmett
from watchword_server.storage.schema import SchemaState, schema_state

__all__ = ["add_parser", "import_emmett"]

EXIT_CONFLICTS = 1


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare the command and its options."""
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


async def import_emmett(settings: Settings, arguments: argparse.Namespace) -> int:
    """Run the import; returns the exit status (1 when conflicts stopped it)."""
    out = Console(soft_wrap=True, highlight=False)
    source = arguments.source or describe_source(arguments.source_url)
    data = await read_emmett(arguments.source_url, arguments.user_table)
    engine = create_engine(settings.database_url)
    try:
        if not arguments.dry_run:
            await check_schema(engine, settings)
        elif await schema_state(engine) is not SchemaState.CURRENT:
            # Not even the embedded file's own schema is brought up to date by a dry run.
            raise SchemaNotReady(
                "the database schema is not this version's: run `watchword migrate` first"
            )
        importer = EmmettImport(settings, Database(engine), SystemClock())
        with _progress() as report_progress:
            report = await importer.run(
                data,
                source,
                dry_run=arguments.dry_run,
                skip_conflicts=arguments.skip_conflicts,
                progress=report_progress,
            )
    finally:
        await engine.dispose()
    _summary(out, report)
    return EXIT_CONFLICTS if report.stopped else 0


@contextmanager
def _progress() -> Iterator[_Reporter]:
    # On standard error, so the summary on standard output stays clean to read or parse.
    bar = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with bar:
        yield _Reporter(bar)


class _Reporter:
    def __init__(self, bar: Progress) -> None:
        self._bar = bar
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, kind: str, done: int, total: int) -> None:
        task = self._tasks.get(kind)
        if task is None:
            task = self._tasks[kind] = self._bar.add_task(f"{kind}s", total=total)
        self._bar.update(task, completed=done, total=total)


def _summary(out: Console, report: ImportReport) -> None:
    table = Table(title=f"import-emmett from {report.source}")
    for heading in ("rows", "added", "merged", "before", "skipped"):
        table.add_column(heading, justify="left" if heading == "rows" else "right")
    for kind in KINDS:
        counts = report.counts[kind]
        table.add_row(
            f"{kind}s",
            str(counts.added),
            str(counts.merged),
            str(counts.before),
            str(counts.skipped),
        )
    out.print(table)
    out.print(
        "added: new rows; merged: rows that joined one Watchword has (a duplicate, a "
        "group of the same name); before: brought in by an earlier run"
    )
    for line in report.conflicts:
        out.print(f"conflict: {line}", markup=False)
    for line in report.notes:
        out.print(f"note: {line}", markup=False)
    if report.stopped:
        out.print(
            f"nothing was written: {len(report.conflicts)} conflict(s); fix them in the "
            "Emmett database, or run again with --skip-conflicts to import the rest",
            markup=False,
        )
    elif report.dry_run:
        out.print(f"dry run: nothing was written ({report.changes} row(s) would be)", markup=False)
    elif report.written:
        out.print(f"imported: {report.changes} row(s) written", markup=False)
    else:
        out.print("nothing to import: everything was imported before", markup=False)
