"""The audit log: renders the configured template and appends the event."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from watchword_server.config import Messages
from watchword_server.domain.common.clock import Clock
from watchword_server.model.records import CallContext, EventKind, EventRecord, UserRecord
from watchword_server.storage.db import Connection
from watchword_server.storage.repositories import events as event_rows
from watchword_server.templates import TemplateError, render

__all__ = ["EventLog"]

_log = logging.getLogger(__name__)

# Which `messages` template describes each kind.
_TEMPLATES: Mapping[EventKind, str] = {
    EventKind.REGISTRATION: "registration_log",
    EventKind.LOGIN: "login_log",
    EventKind.LOGIN_FAILED: "login_failed_log",
    EventKind.LOGOUT: "logout_log",
    EventKind.EMAIL_VERIFICATION: "email_verification_log",
    EventKind.PASSWORD_RETRIEVAL: "password_retrieval_log",
    EventKind.PASSWORD_RESET: "password_reset_log",
    EventKind.PASSWORD_CHANGE: "password_change_log",
    EventKind.PROFILE_UPDATE: "profile_log",
    EventKind.USER_CREATED: "user_created_log",
    EventKind.USER_UPDATED: "user_updated_log",
    EventKind.USER_DELETED: "user_deleted_log",
    EventKind.USER_DISABLED: "user_disabled_log",
    EventKind.USER_BLOCKED: "user_blocked_log",
    EventKind.USER_ALLOWED: "user_allowed_log",
    EventKind.USER_APPROVED: "user_approved_log",
    EventKind.SESSIONS_REVOKED: "sessions_revoked_log",
    EventKind.GROUP_CREATED: "add_group_log",
    EventKind.GROUP_DELETED: "del_group_log",
    EventKind.MEMBERSHIP_ADDED: "add_membership_log",
    EventKind.MEMBERSHIP_REMOVED: "del_membership_log",
    EventKind.PERMISSION_ADDED: "add_permission_log",
    EventKind.PERMISSION_REMOVED: "del_permission_log",
    EventKind.TOTP_ENROLLMENT_STARTED: "totp_enrollment_log",
    EventKind.TOTP_ENABLED: "totp_enabled_log",
    EventKind.TOTP_DISABLED: "totp_disabled_log",
    EventKind.RECOVERY_CODES_REGENERATED: "recovery_codes_regenerated_log",
    EventKind.SECOND_FACTOR_REQUIRED: "second_factor_required_log",
    EventKind.SECOND_FACTOR_FAILED: "second_factor_failed_log",
    EventKind.RECOVERY_CODE_USED: "recovery_code_used_log",
    EventKind.SECOND_FACTORS_RESET: "second_factors_reset_log",
    EventKind.PASSKEY_REGISTERED: "passkey_registered_log",
    EventKind.PASSKEY_DELETED: "passkey_deleted_log",
    EventKind.PASSKEY_LOGIN: "passkey_login_log",
    EventKind.PASSKEY_LOGIN_FAILED: "passkey_login_failed_log",
}


class EventLog:
    """Writes audit events inside the caller's transaction (so they commit with the change)."""

    def __init__(self, messages: Messages, clock: Clock, *, enabled: bool = True) -> None:
        self._messages = messages
        self._clock = clock
        self._enabled = enabled

    def describe(self, kind: EventKind, values: Mapping[str, object]) -> str:
        """Render the configured template of ``kind`` (any kind but APPLICATION, whose
        text is the application's own) with real values."""
        key = _TEMPLATES[kind]
        template = getattr(self._messages, key)
        try:
            return render(str(template), values)
        except TemplateError:
            _log.warning("event template %s is malformed; storing it unrendered", key)
            return str(template)

    def description(
        self,
        kind: EventKind,
        call: CallContext,
        *,
        user: UserRecord | None = None,
        email: str = "",
        values: Mapping[str, object] | None = None,
    ) -> str | None:
        """What an event of ``kind`` would say, or None when ``log_events`` is off (for
        callers that write the event themselves)."""
        if not self._enabled:
            return None
        rendered = {
            "id": str(user.id) if user else "",
            "email": user.email if user else email,
            "origin": call.origin,
            **(values or {}),
        }
        return self.describe(kind, rendered)

    async def record(
        self,
        conn: Connection,
        kind: EventKind,
        call: CallContext,
        *,
        user: UserRecord | None = None,
        email: str = "",
        values: Mapping[str, object] | None = None,
    ) -> None:
        """Append one event unless ``log_events`` is off."""
        description = self.description(kind, call, user=user, email=email, values=values)
        if description is None:
            return
        await event_rows.insert_event(
            conn,
            kind=kind,
            user_id=user.id if user else None,
            description=description,
            client_ip=call.client_ip,
            origin=call.origin,
            now=self._clock.now(),
        )

    async def record_application(
        self,
        conn: Connection,
        call: CallContext,
        *,
        description: str,
        user: UserRecord | None,
        data: dict[str, Any],
    ) -> EventRecord:
        """Append an application's own event (AdminService.LogEvent) as given, whatever
        ``log_events`` says (that setting is about our events), and return it."""
        now = self._clock.now()
        event_id = await event_rows.insert_event(
            conn,
            kind=EventKind.APPLICATION,
            user_id=user.id if user else None,
            description=description,
            client_ip=call.client_ip,
            origin=call.origin,
            now=now,
            data=data,
        )
        return EventRecord(
            id=event_id,
            user_id=user.id if user else None,
            kind=EventKind.APPLICATION,
            description=description,
            client_ip=call.client_ip,
            origin=call.origin,
            create_time=now,
            data=data,
        )
