"""AdminService.LogEvent: the calling application writes an audit event of its own."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from typing import Any

from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.lookups import existing_user
from watchword_server.domain.common.validation import Violations
from watchword_server.model.errors import InvalidArgument
from watchword_server.model.records import CallContext, EventRecord
from watchword_server.storage.db import Connection, Database

__all__ = ["MAX_DESCRIPTION_LENGTH", "MAX_ORIGIN_LENGTH", "ApplicationEvent", "ApplicationEvents"]

MAX_DESCRIPTION_LENGTH = 2000
MAX_ORIGIN_LENGTH = 255  # the events.origin column

# Line breaks and tabs are text; other control characters (NUL above all, which
# PostgreSQL cannot store) would end up in every log viewer that shows the event.
_ALLOWED_CONTROLS = frozenset("\n\r\t")


@dataclass(frozen=True)
class ApplicationEvent:
    """What LogEvent gives (``data`` already bounded in size and depth by the transport)."""

    description: str
    origin: str
    user_id: str
    data: dict[str, Any]


def _has_controls(value: str) -> bool:
    return any(
        unicodedata.category(char) == "Cc" and char not in _ALLOWED_CONTROLS for char in value
    )


class ApplicationEvents:
    """Writes the application's events; they list and stream as ours do."""

    def __init__(self, database: Database, events: EventLog) -> None:
        self._database = database
        self._events = events

    async def log(self, event: ApplicationEvent, call: CallContext) -> EventRecord:
        """Validate and append one event of kind APPLICATION; returns it as stored.

        An empty ``origin`` is the call's own (``admin:<service key name>``).

        Raises:
            InvalidArgument: a missing or too long description, a too long origin, or
                either holding control characters.
            UserNotFound: ``user_id`` names no user.
        """
        problems = Violations()
        if problems.required("description", event.description.strip()):
            if len(event.description) > MAX_DESCRIPTION_LENGTH:
                problems.add(
                    "description",
                    f"description must be at most {MAX_DESCRIPTION_LENGTH} characters",
                )
            elif _has_controls(event.description):
                problems.add(
                    "description",
                    "description must not contain control characters but line breaks and tabs",
                )
        if len(event.origin) > MAX_ORIGIN_LENGTH:
            problems.add("origin", f"origin must be at most {MAX_ORIGIN_LENGTH} characters")
        elif any(unicodedata.category(char) == "Cc" for char in event.origin):
            problems.add("origin", "origin must not contain control characters")
        if problems:
            raise InvalidArgument(problems.items)
        written = replace(call, origin=event.origin) if event.origin else call

        async def write(conn: Connection) -> EventRecord:
            user = await existing_user(conn, event.user_id) if event.user_id else None
            return await self._events.record_application(
                conn, written, description=event.description, user=user, data=event.data
            )

        return await self._database.transaction(write)
