"""The logged-in user's own profile: read it, and update the fields users may write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchword_server.config import Settings
from watchword_server.domain.access.changes import Change, ChangeNotices
from watchword_server.domain.accounts.sessions import Sessions
from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.clock import Clock
from watchword_server.domain.common.custom_fields import Writer, check_extra
from watchword_server.domain.common.validation import Violations
from watchword_server.model.errors import InvalidArgument, SessionInvalid
from watchword_server.model.records import CallContext, EventKind, UserRecord
from watchword_server.storage.db import Connection, Database
from watchword_server.storage.repositories import users as user_rows

__all__ = ["Profiles"]

_READ_ONLY = frozenset({"id", "email", "status", "email_verified", "create_time", "update_time"})


class Profiles:
    """GetProfile and UpdateProfile."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        sessions: Sessions,
        events: EventLog,
        clock: Clock,
        notices: ChangeNotices,
    ) -> None:
        self._notices = notices
        self._settings = settings
        self._database = database
        self._sessions = sessions
        self._events = events
        self._clock = clock

    async def get(self, *, session_token: str) -> UserRecord:
        """The session's user."""
        return (await self._sessions.introspect(session_token)).user

    async def update(
        self,
        *,
        session_token: str,
        paths: Sequence[str],
        first_name: str,
        last_name: str,
        extra: dict[str, Any],
        call: CallContext,
    ) -> UserRecord:
        """Update the fields named by ``paths`` (a FieldMask) from the given values.

        Writable: ``first_name``, ``last_name``, ``extra`` (every profile-writable custom
        field at once) and ``extra.<name>``. An empty mask means every writable field the
        request sets. E-mail and status are read-only here.
        """
        # Not from the cache: the merge below must start from the stored fields.
        current = (await self._sessions.introspect(session_token, cached=False)).user
        settings = self._settings
        if not paths:  # no mask: the fields the request sets (proto3 cannot tell "" apart)
            named = {"first_name": first_name, "last_name": last_name}
            paths = [path for path, value in named.items() if value]
            paths += [f"extra.{key}" for key in extra]
        problems = Violations()
        names: dict[str, str] = {}
        extra_paths: set[str] = set()
        replace_extra = False
        for path in dict.fromkeys(paths):
            if path in ("first_name", "last_name"):
                value = first_name if path == "first_name" else last_name
                problems.name(path, value, required=settings.names_required)
                names[path] = value
            elif path == "extra":
                replace_extra = True
            elif path.startswith("extra.") and len(path) > len("extra."):
                extra_paths.add(path.removeprefix("extra."))
            elif path in _READ_ONLY:
                problems.add("update_mask", f"{path} is read-only")
            else:
                problems.add("update_mask", f"{path} is not a field of User")

        declared = {field.name: field for field in settings.custom_fields}
        replaced: dict[str, Any] = {}
        if replace_extra:
            replaced = check_extra(
                settings.custom_fields,
                extra,
                writer=Writer.PROFILE,
                problems=problems,
                require=True,
            )
        sent: dict[str, Any] = {}
        if not replace_extra and extra_paths:
            sent = check_extra(
                settings.custom_fields,
                {key: extra.get(key) for key in extra_paths},
                writer=Writer.PROFILE,
                problems=problems,
                require=False,
            )
        if problems:
            raise InvalidArgument(problems.items)

        def merged(stored: dict[str, Any]) -> dict[str, Any]:
            new_extra = dict(stored)
            if replace_extra:
                # Replace what users see and may write by what was sent; keep the rest
                # (a write-only field they cannot see is not theirs to erase unknowingly).
                for key in list(new_extra):
                    field = declared.get(key)
                    if field is not None and field.profile and field.readable:
                        del new_extra[key]
                new_extra.update(replaced)
            for key in extra_paths if not replace_extra else ():
                if key in sent:
                    new_extra[key] = sent[key]
                else:
                    new_extra.pop(key, None)
            return new_extra

        async def update(conn: Connection) -> UserRecord:
            # The merge starts from the row as it is now, locked: a concurrent change (an
            # administrator's, say) to fields this request leaves alone is kept.
            locked = await user_rows.get(conn, current.id, lock=True)
            if locked is None:
                raise SessionInvalid()
            changes_extra = replace_extra or bool(extra_paths)
            updated = await user_rows.update_user(
                conn,
                current.id,
                now=self._clock.now(),
                first_name=names.get("first_name"),
                last_name=names.get("last_name"),
                extra=merged(locked.extra) if changes_extra else None,
            )
            if updated is None:
                raise SessionInvalid()
            await self._events.record(conn, EventKind.PROFILE_UPDATE, call, user=updated)
            await self._notices.publish(conn, Change.of_users(updated.id))
            return updated

        return await self._database.transaction(update)
