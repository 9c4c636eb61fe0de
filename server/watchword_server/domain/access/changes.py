"""Change notices: what a write touched, published with the write, applied after its commit.

Each write that can change a check's answer (a membership, a grant, a group, a user's status
or profile, a session, a service key) calls ``ChangeNotices.publish`` inside its
transaction. On PostgreSQL that queues a NOTIFY, delivered to every server process when the
transaction commits; every process then drops the cached answers the change touched
(``runtime/change_listener.py``). The writing process also applies the change itself right
after its commit, so its own next check never waits for the notification.

A change's **revision** is opaque to callers. On PostgreSQL it is ``x`` and the writing
transaction's id: unique for the life of the database, and the same in every process that
hears the notice. On SQLite (one process only) it is ``s`` and a counter of this process.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from watchword_server.storage import notices
from watchword_server.storage.db import Connection, Database

__all__ = ["Change", "ChangeNotices", "is_revision"]

_REVISION = re.compile(r"[xs][0-9]{1,20}")


def is_revision(text: str) -> bool:
    """Whether ``text`` has the shape of a revision this service hands out."""
    return len(text) <= 21 and _REVISION.fullmatch(text) is not None


@dataclass(frozen=True)
class Change:
    """What one write touched; a cached answer that depends on any of it is dropped."""

    users: frozenset[uuid.UUID] = field(default_factory=frozenset)
    sessions: frozenset[bytes] = field(default_factory=frozenset)  # token digests
    permission_names: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)
    keys: frozenset[uuid.UUID] = field(default_factory=frozenset)
    everything: bool = False

    @classmethod
    def of_users(cls, *users: uuid.UUID) -> Change:
        """A change to these users (status, profile, memberships or sessions)."""
        return cls(users=frozenset(users))

    def tags(self) -> Iterator[tuple[str, Any]]:
        """The cache tags this change names."""
        yield from (("user", user) for user in self.users)
        yield from (("session", digest) for digest in self.sessions)
        yield from (("name", name) for name in self.permission_names)
        yield from (("group", group) for group in self.groups)
        yield from (("key", key) for key in self.keys)

    def encode(self) -> str:
        """The notification body."""
        if self.everything:
            return '{"all":true}'
        body = json.dumps(
            {
                "u": sorted(str(user) for user in self.users),
                "s": sorted(digest.hex() for digest in self.sessions),
                "n": sorted(self.permission_names),
                "g": sorted(self.groups),
                "k": sorted(str(key) for key in self.keys),
            },
            separators=(",", ":"),
        )
        # Too long for a notification: drop everything instead.
        return body if len(body.encode()) <= notices.MAX_PAYLOAD else '{"all":true}'

    @classmethod
    def decode(cls, body: str) -> Change:
        """Read a notification body; anything unreadable counts as "everything changed"."""
        try:
            data = json.loads(body)
            if data.get("all"):
                return cls(everything=True)
            return cls(
                users=frozenset(uuid.UUID(user) for user in _strings(data.get("u"))),
                sessions=frozenset(bytes.fromhex(d) for d in _strings(data.get("s"))),
                permission_names=frozenset(_strings(data.get("n"))),
                groups=frozenset(_strings(data.get("g"))),
                keys=frozenset(uuid.UUID(key) for key in _strings(data.get("k"))),
            )
        except (ValueError, TypeError, AttributeError):
            return cls(everything=True)


def _strings(value: Any) -> Iterable[str]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("not a list of strings")
    return value


class ChangeNotices:
    """Publishes changes within write transactions.

    Args:
        database: where the writes happen.
        apply: called with each change and its revision right after its commit, in this
            process (the cache's ``apply``).
    """

    def __init__(self, database: Database, apply: Any) -> None:
        self._database = database
        self._apply = apply
        self._counter = 0

    async def publish(self, conn: Connection, change: Change) -> str:
        """Announce ``change`` with ``conn``'s transaction; returns its revision."""
        if self._database.is_postgresql:
            revision = "x" + await notices.notify_change(conn, change.encode())
        else:
            # SQLite serves one process and takes its write lock at BEGIN, so the counter
            # follows the commit order.
            self._counter += 1
            revision = f"s{self._counter}"
        self._database.after_commit(conn, lambda: self._apply(change, revision))
        return revision
