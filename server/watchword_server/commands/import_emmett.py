"""``watchword import-emmett SOURCE_URL``: the command's face (progress bar and summary);
the work is ``domain.imports.emmett_import``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from watchword_server.commands import CommandError
from watchword_server.config import Settings
from watchword_server.domain.common.clock import SystemClock
from watchword_server.domain.imports.emmett_import import EmmettImport
from watchword_server.domain.imports.emmett_report import KINDS, ImportReport
from watchword_server.startup import SchemaNotReady, check_schema
from watchword_server.storage.db import Database, create_engine
from watchword_server.storage.emmett_source import EmmettSourceError, describe_source, read_emmett
from watchword_server.storage.repositories.emmett_imports import RowTaken
from watchword_server.storage.schema import SchemaState, schema_state

__all__ = ["import_emmett", "run"]

EXIT_CONFLICTS = 1


def run(settings: Settings, arguments: argparse.Namespace) -> int:
    """Run the import; returns the exit status (1 when conflicts stopped it).

    Raises:
        CommandError: the source cannot be read, or a row was taken meanwhile (nothing was
            written).
        StartupError: the schema is not this version's (SchemaNotReady says what to run).
    """
    try:
        return asyncio.run(import_emmett(settings, arguments))
    except EmmettSourceError as error:
        raise CommandError(str(error)) from None
    except RowTaken as error:
        raise CommandError(f"{error}; nothing was written: run the import again") from None


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
