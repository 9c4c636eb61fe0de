"""``watchword import-emmett``: brings an Emmett 2.8 app's users, groups, memberships,
grants and events into Watchword, in one transaction, and remembers what it brought so a
second run adds nothing and a later one adds only what is new.

The rules of each value are in ``emmett_rules``, the decisions in ``emmett_plan``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from watchword_server.config import Settings
from watchword_server.domain.access.changes import Change, ChangeNotices
from watchword_server.domain.common.clock import Clock
from watchword_server.domain.imports.emmett_plan import Plan, TargetState, make_plan
from watchword_server.domain.imports.emmett_report import ImportReport
from watchword_server.model.email_addresses import email_key
from watchword_server.model.emmett import EmmettDatabase
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import emmett_imports as rows

__all__ = ["EmmettImport", "Progress"]

# Rows written between two progress reports.
_BATCH = 500

Progress = Callable[[str, int, int], None]
"""Called as ``progress(kind, done, total)`` while rows of ``kind`` are written."""


def _no_progress(kind: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class _Options:
    dry_run: bool
    skip_conflicts: bool


class EmmettImport:
    """Imports one Emmett database, named ``source`` in the links it leaves."""

    def __init__(self, settings: Settings, database: Database, clock: Clock) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        # No cache of this process to drop: the notice is for the servers (PostgreSQL).
        self._notices = ChangeNotices(database, lambda change, revision: None)

    async def run(
        self,
        data: EmmettDatabase,
        source: str,
        *,
        dry_run: bool = False,
        skip_conflicts: bool = False,
        progress: Progress = _no_progress,
    ) -> ImportReport:
        """Plan the import and, unless ``dry_run`` or a conflict stops it, write it.

        All of it is one transaction: a failure on any row writes nothing at all.
        """
        options = _Options(dry_run, skip_conflicts)
        if dry_run:
            async with self._database.connect() as conn:
                report, _ = await self._plan(conn, data, source, options)
            return report

        async def work(conn: Connection) -> ImportReport:
            report, plan = await self._plan(conn, data, source, options)
            if report.stopped:
                return report
            if report.changes:
                await self._write(conn, source, plan, progress)
                report.written = True
            return report

        return await self._database.transaction(work)

    async def _plan(
        self, conn: Connection, data: EmmettDatabase, source: str, options: _Options
    ) -> tuple[ImportReport, Plan]:
        links = await rows.links_of(conn, source)
        linked: dict[str, set[uuid.UUID]] = {"user": set(), "group": set()}
        for (kind, _), target in links.items():
            if kind in linked:
                linked[kind].add(uuid.UUID(target))
        groups_by_name = await rows.groups_named(conn, {group.role for group in data.groups})
        group_ids = set(groups_by_name.values()) | linked["group"]
        state = TargetState(
            links=links,
            alive_users=frozenset(await rows.alive_users(conn, linked["user"])),
            alive_groups=frozenset(await rows.alive_groups(conn, linked["group"])),
            users_by_key=await rows.users_with_keys(
                conn, {email_key(user.email) for user in data.users}
            ),
            groups_by_name=groups_by_name,
            memberships=await rows.memberships_of(conn, group_ids),
            permissions=await rows.permissions_of(conn, group_ids),
        )
        report = ImportReport(source=source, dry_run=options.dry_run)
        plan = make_plan(
            data,
            state,
            report,
            custom_fields=self._settings.custom_fields,
            messages=self._settings.messages,
            now=self._clock.now(),
        )
        report.stopped = bool(report.conflicts) and not options.skip_conflicts
        return report, plan

    async def _write(self, conn: Connection, source: str, plan: Plan, progress: Progress) -> None:
        steps = (
            ("user", plan.users, rows.insert_users),
            ("group", plan.groups, rows.insert_groups),
            ("membership", plan.memberships, rows.insert_memberships),
            ("permission", plan.permissions, rows.insert_permissions),
        )
        for kind, batch, insert in steps:
            progress(kind, 0, len(batch))
            for start in range(0, len(batch), _BATCH):
                await insert(conn, batch[start : start + _BATCH])
                progress(kind, min(start + _BATCH, len(batch)), len(batch))
        event_ids: list[int] = []
        progress("event", 0, len(plan.events))
        for start in range(0, len(plan.events), _BATCH):
            event_ids += await rows.insert_events(conn, plan.events[start : start + _BATCH])
            progress("event", len(event_ids), len(plan.events))
        links = plan.links + [
            rows.Link("event", str(source_id), str(event_id))
            for source_id, event_id in zip(plan.event_sources, event_ids, strict=True)
        ]
        await rows.add_links(conn, source, links, self._clock.now())
        # Servers holding cached answers drop them all: the import touched any of them.
        await self._notices.publish(conn, Change(everything=True))
