"""The plan of an Emmett import: which rows to add and which source rows they stand for,
decided from the source and what the target already holds, before anything is written
(so ``--dry-run`` is the same plan, not written)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from watchword_server.config import CustomField, Messages
from watchword_server.domain.common.validation import Violations
from watchword_server.domain.imports import emmett_rules as rules
from watchword_server.domain.imports.emmett_report import ImportReport
from watchword_server.model.email_addresses import email_key
from watchword_server.model.emmett import EmmettDatabase, EmmettUser
from watchword_server.model.records import EventKind, UserStatus
from watchword_server.storage.repositories.emmett_imports import Link

__all__ = ["Plan", "TargetState", "make_plan"]

_NAME_LIMIT: Final = 255  # groups.name, permissions.name and table_name
_CLIENT_IP_LIMIT: Final = 64
_ORIGIN_LIMIT: Final = 255
_SHOWN: Final = 5  # examples quoted in one note


@dataclass(frozen=True)
class TargetState:
    """What the Watchword database holds that the plan depends on."""

    links: Mapping[tuple[str, str], str]
    alive_users: frozenset[uuid.UUID]
    alive_groups: frozenset[uuid.UUID]
    users_by_key: Mapping[str, uuid.UUID]
    groups_by_name: Mapping[str, uuid.UUID]
    memberships: Mapping[tuple[uuid.UUID, uuid.UUID], uuid.UUID]
    permissions: Mapping[tuple[uuid.UUID, str, str, str], uuid.UUID]


@dataclass
class Plan:
    """Rows to insert (dicts of their table's columns), the links to remember, and the
    report. ``event_sources`` are the source ids of ``events``, in order (an event's id
    is known only once inserted)."""

    report: ImportReport
    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    memberships: list[dict[str, Any]] = field(default_factory=list)
    permissions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_sources: list[int] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)


def _linked(state: TargetState, kind: str, source_id: int) -> str | None:
    return state.links.get((kind, str(source_id)))


class _Planner:
    def __init__(
        self,
        source: EmmettDatabase,
        state: TargetState,
        *,
        custom_fields: Sequence[CustomField],
        messages: Messages,
        now: datetime,
        report: ImportReport,
    ) -> None:
        self.source = source
        self.state = state
        self.custom_fields = custom_fields
        self.messages = messages
        self.now = now
        self.plan = Plan(report)
        self.report = report
        # Source id to the Watchword id it has (imported before and still there) or gets.
        self.users: dict[int, uuid.UUID] = {}
        self.groups: dict[int, uuid.UUID] = {}

    def run(self) -> Plan:
        self._users()
        self._groups()
        self._memberships()
        self._permissions()
        self._events()
        return self.plan

    def _users(self) -> None:
        counts = self.report.counts["user"]
        by_key: dict[str, list[EmmettUser]] = defaultdict(list)
        for user in self.source.users:
            by_key[email_key(user.email)].append(user)
        undeclared = [
            name
            for name in self.source.extra_columns
            if name not in {field.name for field in self.custom_fields}
        ]
        for name in undeclared:
            self.report.notes.append(
                f"column {self.source.user_table}.{name} is no declared custom field: its "
                "values were not imported (declare it in custom_fields and run again to "
                "import it for new users)"
            )
        reset_keys = no_password = unverifiable = 0
        for user in self.source.users:
            target = _linked(self.state, "user", user.id)
            if target is not None:
                counts.before += 1
                if uuid.UUID(target) in self.state.alive_users:
                    self.users[user.id] = uuid.UUID(target)
                continue
            problem = self._user_problem(user, by_key)
            extra, extra_problems = rules.user_extra(user, self.custom_fields)
            if problem is None and extra_problems:
                problem = "; ".join(extra_problems)
            if problem is not None:
                counts.skipped += 1
                self.report.conflicts.append(f"user {user.id} <{user.email}>: {problem}")
                continue
            new_id = uuid.uuid4()
            self.users[user.id] = new_id
            status = rules.status_of(user.registration_key)
            hashed = rules.password_hash(user)
            no_password += hashed == rules.NO_PASSWORD
            unverifiable += hashed != rules.NO_PASSWORD and not rules.is_legacy_hash(hashed)
            reset_keys += bool(user.reset_password_key)
            created = rules.utc(user.created_at, self.now)
            self.plan.users.append(
                {
                    "id": new_id,
                    "email": user.email,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "password_hash": hashed,
                    "status": status.value,
                    # Emmett keeps no flag of its own: past the verification step is verified.
                    "email_verified": status is not UserStatus.PENDING_VERIFICATION,
                    "extra": extra,
                    "create_time": created,
                    "update_time": rules.utc(user.updated_at, created),
                }
            )
            self.plan.links.append(Link("user", str(user.id), str(new_id)))
            counts.added += 1
        if reset_keys:
            self.report.notes.append(
                f"{reset_keys} pending password reset key(s) were dropped: Watchword keeps "
                "only digests of keys it mailed itself (the users can ask for a new one)"
            )
        if no_password:
            self.report.notes.append(
                f"{no_password} user(s) had no password: they must reset it to log in"
            )
        if unverifiable:
            self.report.notes.append(
                f"{unverifiable} user(s) have a hash that is not Emmett's pbkdf2 (another "
                "hmac_alg): it is kept, but they must reset the password to log in"
            )

    def _user_problem(self, user: EmmettUser, by_key: Mapping[str, list[EmmettUser]]) -> str | None:
        problems = Violations()
        problems.email("email", user.email)
        problems.name("first_name", user.first_name, required=False)
        problems.name("last_name", user.last_name, required=False)
        if problems:
            return "; ".join(item.description for item in problems.items)
        key = email_key(user.email)
        others = [other for other in by_key[key] if other.id != user.id]
        if others:
            named = ", ".join(f"user {other.id} <{other.email}>" for other in others)
            return f"the same address as {named} once case is ignored (not merged)"
        if key in self.state.users_by_key:
            return "the address of a Watchword account that no run imported from this source"
        return None

    def _groups(self) -> None:
        counts = self.report.counts["group"]
        for group in self.source.groups:
            target = _linked(self.state, "group", group.id)
            if target is not None:
                counts.before += 1
                if uuid.UUID(target) in self.state.alive_groups:
                    self.groups[group.id] = uuid.UUID(target)
                continue
            if not group.role or len(group.role) > _NAME_LIMIT or not group.role.isprintable():
                counts.skipped += 1
                self.report.conflicts.append(f"group {group.id} {group.role!r}: not a group name")
                continue
            existing = self.state.groups_by_name.get(group.role)
            if existing is not None:
                counts.merged += 1
                self.groups[group.id] = existing
                self.report.notes.append(
                    f"group {group.role!r} existed in Watchword already: its Emmett members "
                    "and grants join it"
                )
            else:
                existing = uuid.uuid4()
                counts.added += 1
                self.plan.groups.append(
                    {
                        "id": existing,
                        "name": group.role,
                        "description": group.description,
                        "extra": {},
                        "create_time": rules.utc(group.created_at, self.now),
                    }
                )
            self.groups[group.id] = existing
            self.plan.links.append(Link("group", str(group.id), str(existing)))

    def _memberships(self) -> None:
        counts = self.report.counts["membership"]
        planned: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = dict(self.state.memberships)
        for membership in self.source.memberships:
            if _linked(self.state, "membership", membership.id) is not None:
                counts.before += 1
                continue
            user = self.users.get(membership.user_id or 0)
            group = self.groups.get(membership.group_id or 0)
            if user is None or group is None:
                counts.skipped += 1  # its user or group was not imported (see above)
                continue
            target = planned.get((group, user))
            if target is not None:
                counts.merged += 1
            else:
                target = planned[(group, user)] = uuid.uuid4()
                counts.added += 1
                self.plan.memberships.append(
                    {
                        "id": target,
                        "group_id": group,
                        "user_id": user,
                        "extra": {},
                        "create_time": rules.utc(membership.created_at, self.now),
                    }
                )
            self.plan.links.append(Link("membership", str(membership.id), str(target)))

    def _permissions(self) -> None:
        counts = self.report.counts["permission"]
        planned: dict[tuple[uuid.UUID, str, str, str], uuid.UUID] = dict(self.state.permissions)
        names = {group.id: group.role for group in self.source.groups}
        wide: list[str] = []
        for permission in self.source.permissions:
            if _linked(self.state, "permission", permission.id) is not None:
                counts.before += 1
                continue
            group = self.groups.get(permission.group_id or 0)
            table, record = rules.grant_fields(permission)
            if group is None:
                counts.skipped += 1
                continue
            if not permission.name or max(len(permission.name), len(table)) > _NAME_LIMIT:
                counts.skipped += 1
                self.report.conflicts.append(
                    f"permission {permission.id} {permission.name!r}: its name or table "
                    f"name is empty or longer than {_NAME_LIMIT} characters"
                )
                continue
            key = (group, permission.name, table, record)
            target = planned.get(key)
            if target is not None:
                counts.merged += 1
            else:
                target = planned[key] = uuid.uuid4()
                counts.added += 1
                if rules.is_wildcard(table, record):
                    wide.append(
                        f"{names.get(permission.group_id or 0, '?')}:{permission.name}"
                        f"({table or '*'}, {record or '*'})"
                    )
                self.plan.permissions.append(
                    {
                        "id": target,
                        "group_id": group,
                        "name": permission.name,
                        "table_name": table,
                        "record_id": record,
                        "extra": {},
                        "create_time": rules.utc(permission.created_at, self.now),
                    }
                )
            self.plan.links.append(Link("permission", str(permission.id), str(target)))
        if wide:
            shown = ", ".join(wide[:_SHOWN]) + (" …" if len(wide) > _SHOWN else "")
            self.report.notes.append(
                f"{len(wide)} grant(s) name no table or no record ({shown}): each still "
                "allows the check with its own values, and Watchword also lets it match any "
                "table or record there (see docs/import-emmett.md)"
            )

    def _events(self) -> None:
        counts = self.report.counts["event"]
        application: dict[str, int] = {}
        cut = 0
        for event in self.source.events:
            if _linked(self.state, "event", event.id) is not None:
                counts.before += 1
                continue
            user: uuid.UUID | None = None
            if event.user_id is not None:
                user = self.users.get(event.user_id)
                if user is None:
                    counts.skipped += 1
                    continue
            kind = rules.event_kind(event.description, self.messages)
            if kind is None:  # the app's own (auth.log_event): its text is all there is
                kind = EventKind.APPLICATION
                application[event.description] = application.get(event.description, 0) + 1
            cut += len(event.client_ip) > _CLIENT_IP_LIMIT or len(event.origin) > _ORIGIN_LIMIT
            self.plan.events.append(
                {
                    "kind": kind.value,
                    "user_id": user,
                    "description": rules.event_description(
                        event.description, "" if user is None else str(user)
                    ),
                    "client_ip": event.client_ip[:_CLIENT_IP_LIMIT],
                    "origin": event.origin[:_ORIGIN_LIMIT],
                    "create_time": rules.utc(event.created_at, self.now),
                }
            )
            self.plan.event_sources.append(event.id)
            counts.added += 1
        if application:
            shown = ", ".join(
                f"{text!r} ×{count}" for text, count in list(application.items())[:_SHOWN]
            )
            self.report.notes.append(
                f"{sum(application.values())} event(s) with a text no auth message has are "
                f"the app's own: imported with kind EVENT_KIND_APPLICATION ({shown})"
            )
        if cut:
            self.report.notes.append(f"{cut} event(s) had a client address or origin cut short")


def make_plan(
    source: EmmettDatabase,
    state: TargetState,
    report: ImportReport,
    *,
    custom_fields: Sequence[CustomField],
    messages: Messages,
    now: datetime,
) -> Plan:
    """Decide every row of the import (see the module's docstring)."""
    planner = _Planner(
        source, state, custom_fields=custom_fields, messages=messages, now=now, report=report
    )
    return planner.run()
