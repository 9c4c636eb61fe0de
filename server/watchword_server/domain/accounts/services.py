"""What the account flows share: one bundle, built once in wiring.py, handed to each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from watchword_server.config import Settings
from watchword_server.domain.access.changes import ChangeNotices
from watchword_server.domain.accounts.account_keys import MailedKeys
from watchword_server.domain.accounts.hooks import Hooks
from watchword_server.domain.accounts.sessions import Sessions
from watchword_server.domain.accounts.throttle import LoginThrottle
from watchword_server.domain.audit.events import EventLog
from watchword_server.domain.common.clock import Clock
from watchword_server.security.hashing_pool import HashingPool
from watchword_server.storage.db import Database
from watchword_server.storage.logins import Logins

__all__ = ["AccountFlow", "AccountServices"]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class AccountServices:
    """The parts ``Accounts`` and ``PasswordFlows`` both work with.

    Attributes:
        mail_queued: called after a commit that queued mail (the sender's ``wake``).
        hooks: the application's hooks (an embedding's; by default they allow all).
    """

    settings: Settings
    database: Database
    hasher: HashingPool
    sessions: Sessions
    events: EventLog
    keys: MailedKeys
    throttle: LoginThrottle
    clock: Clock
    notices: ChangeNotices
    logins: Logins
    mail_queued: Callable[[], None] = field(default=_nothing)
    hooks: Hooks = field(default_factory=Hooks)


class AccountFlow:
    """The base of the account flows: each part of ``AccountServices`` under one name in
    all of them (``self._database``, ``self._sessions``...)."""

    def __init__(self, services: AccountServices) -> None:
        self._settings = services.settings
        self._database = services.database
        self._hasher = services.hasher
        self._sessions = services.sessions
        self._events = services.events
        self._keys = services.keys
        self._throttle = services.throttle
        self._clock = services.clock
        self._notices = services.notices
        self._logins = services.logins
        self._mail_queued = services.mail_queued
        self._hooks = services.hooks
