"""How each Emmett 2.8 value becomes a Watchword value: statuses, grants, event kinds,
times and the app's own user columns. Pure functions; ``emmett_import`` applies them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from watchword_server.config import CustomField, Messages
from watchword_server.domain.common.custom_fields import Writer, check_extra
from watchword_server.domain.common.validation import Violations
from watchword_server.model.emmett import EmmettPermission, EmmettUser
from watchword_server.model.records import EventKind, UserStatus
from watchword_server.templates import TemplateError, render

__all__ = [
    "NO_PASSWORD",
    "event_kind",
    "event_description",
    "grant_fields",
    "is_legacy_hash",
    "is_wildcard",
    "password_hash",
    "status_of",
    "user_extra",
    "utc",
]

# Stored for accounts without a usable password (as users.py's NO_PASSWORD): no password
# ever verifies against it.
NO_PASSWORD: Final = "!no-password"  # noqa: S105 - a marker, not a secret

_STATUS_WORDS: Final[Mapping[str, UserStatus]] = {
    "": UserStatus.ACTIVE,
    "pending": UserStatus.PENDING_APPROVAL,
    "disabled": UserStatus.DISABLED,
    "blocked": UserStatus.BLOCKED,
}

# Emmett's own default texts of its `*_log` messages (emmett/tools/auth/ext.py, 2.8):
# Emmett stores them unrendered, so the text itself tells the kind.
_EMMETT_LOG_TEXTS: Final[Mapping[str, EventKind]] = {
    "User {id} logged in": EventKind.LOGIN,
    "User {id} logged out": EventKind.LOGOUT,
    "User {id} registered": EventKind.REGISTRATION,
    "User {id} updated profile": EventKind.PROFILE_UPDATE,
    "Verification email sent to user {id}": EventKind.EMAIL_VERIFICATION,
    "User {id} asked for password retrieval": EventKind.PASSWORD_RETRIEVAL,
    "User {id} reset the password": EventKind.PASSWORD_RESET,
    "User {id} changed the password": EventKind.PASSWORD_CHANGE,
}
# The same messages by their (shared) setting names: an app's overrides carried over into
# Watchword's `messages` are recognised too.
_LOG_SETTINGS: Final[Mapping[str, EventKind]] = {
    "login_log": EventKind.LOGIN,
    "logout_log": EventKind.LOGOUT,
    "registration_log": EventKind.REGISTRATION,
    "profile_log": EventKind.PROFILE_UPDATE,
    "email_verification_log": EventKind.EMAIL_VERIFICATION,
    "password_retrieval_log": EventKind.PASSWORD_RETRIEVAL,
    "password_reset_log": EventKind.PASSWORD_RESET,
    "password_change_log": EventKind.PASSWORD_CHANGE,
}
_TRUE: Final = frozenset({"t", "true", "1", "yes", "on"})
_FALSE: Final = frozenset({"f", "false", "0", "no", "off"})


def status_of(registration_key: str) -> UserStatus:
    """Emmett's ``registration_key`` as a status. Any other non-empty value is a mailed
    verification key (a uuid4): Emmett's login treats every such value so."""
    return _STATUS_WORDS.get(registration_key.strip(), UserStatus.PENDING_VERIFICATION)


def password_hash(user: EmmettUser) -> str:
    """What to store as the user's hash: Emmett's own string, which Watchword verifies
    as a legacy hash and replaces at the first login, or ``NO_PASSWORD`` when empty."""
    return user.password if user.password else NO_PASSWORD


def is_legacy_hash(stored: str) -> bool:
    """Whether ``stored`` has the form Watchword verifies for Emmett's hashes."""
    return stored.startswith("pbkdf2(") and stored.count("$") == 2


def utc(value: datetime | None, default: datetime) -> datetime:
    """Emmett's naive UTC time as an aware one (``default`` when missing)."""
    if value is None:
        return default
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def grant_fields(permission: EmmettPermission) -> tuple[str, str]:
    """A grant's table and record as Watchword stores them: NULL or ``''`` table, and
    record 0 or NULL, are ``""`` (none)."""
    table = permission.table_name or ""
    record = "" if not permission.record_id else str(permission.record_id)
    return table, record


def is_wildcard(table: str, record: str) -> bool:
    """Whether Watchword reads the grant more widely than Emmett did: an empty field of a
    Watchword grant matches any value, while Emmett's grants never did."""
    return table == "" or record == ""


def event_kind(description: str, messages: Messages) -> EventKind | None:
    """The kind of an Emmett event, told by its unrendered text; None for the app's own."""
    kind = _EMMETT_LOG_TEXTS.get(description)
    if kind is not None:
        return kind
    for setting, setting_kind in _LOG_SETTINGS.items():
        if str(getattr(messages, setting)) == description:
            return setting_kind
    return None


def event_description(description: str, user_id: str) -> str:
    """Emmett's text with its ``{id}`` filled in, as Watchword's own events are."""
    try:
        return render(description, {"id": user_id})
    except TemplateError:
        return description


def _coerce(field: CustomField, value: Any) -> Any:
    """A database value in the Python type ``check_extra`` expects (pydal keeps booleans
    as 'T'/'F'); values that do not convert are left for ``check_extra`` to refuse."""
    if field.type == "string":
        return value if isinstance(value, str) else str(value)
    if field.type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else value
    if isinstance(value, str):
        try:
            return int(value) if field.type == "integer" else float(value)
        except ValueError:
            return value
    return value


def user_extra(
    user: EmmettUser, declared: Sequence[CustomField]
) -> tuple[dict[str, Any], list[str]]:
    """The user's extra columns that are declared custom fields, validated as an
    administrator's write; and the problems found (empty when none)."""
    fields = {field.name: field for field in declared}
    values = {
        name: _coerce(fields[name], value)
        for name, value in user.extra.items()
        if name in fields and value is not None
    }
    problems = Violations()
    extra = check_extra(
        declared, values, writer=Writer.ADMIN, problems=problems, require=False, prefix="extra"
    )
    return extra, [f"{item.field}: {item.description}" for item in problems.items]
