"""Validation of the deployment's declared custom user fields (``User.extra``)."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any

from watchword_server.config import CustomField
from watchword_server.domain.common.validation import Violations

__all__ = ["Writer", "check_extra"]


class Writer(enum.Enum):
    """Who writes the fields, which decides what is writable."""

    REGISTRATION = "registration"
    PROFILE = "profile"
    ADMIN = "admin"


def _writable(field: CustomField, writer: Writer) -> bool:
    if writer is Writer.REGISTRATION:
        return field.registration
    if writer is Writer.PROFILE:
        return field.profile
    return True


def _visible(field: CustomField, writer: Writer) -> bool:
    return writer is Writer.ADMIN or field.readable


def _coerce(field: CustomField, value: Any) -> tuple[bool, Any]:
    """Return (ok, value in its stored form). Struct numbers arrive as floats."""
    if field.type == "string":
        ok = isinstance(value, str) and len(value) <= field.max_length and "\x00" not in value
        return ok, value
    if field.type == "boolean":
        return isinstance(value, bool), value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False, value
    if not math.isfinite(value):
        return False, value
    if field.type == "integer":
        if isinstance(value, float) and not value.is_integer():
            return False, value
        return abs(value) < 2**53, int(value)
    return True, float(value)


def check_extra(
    declared: Sequence[CustomField],
    extra: Mapping[str, Any],
    *,
    writer: Writer,
    problems: Violations,
    require: bool,
    prefix: str = "extra",
) -> dict[str, Any]:
    """Validate ``extra`` against the declared fields and return it in stored form.

    Unknown keys, keys ``writer`` may not write and values of the wrong type become
    violations on ``<prefix>.<key>``. With ``require``, a required field that ``writer``
    may write must be present. A ``null`` value means "unset" for optional fields.
    A field hidden from users (``readable`` false) that an end-user ``writer`` may not
    write is refused as an unknown key is, so that its existence stays hidden too.
    """
    fields = {field.name: field for field in declared}
    result: dict[str, Any] = {}
    for key in sorted(extra):
        field = fields.get(key)
        path = f"{prefix}.{key}"
        if field is None or (not _writable(field, writer) and not _visible(field, writer)):
            problems.add(path, f"{key} is not a declared custom field")
            continue
        if not _writable(field, writer):
            problems.add(path, f"{key} is not writable here")
            continue
        value = extra[key]
        if value is None:
            if field.required:
                problems.add(path, f"{key} is required")
            continue
        ok, stored = _coerce(field, value)
        if not ok:
            problems.add(path, f"{key} must be a valid {field.type}")
            continue
        result[key] = stored
    if require:
        for field in declared:
            # A profile replacing all of `extra` keeps the write-only fields it does not
            # send (its user cannot see them): they are never missing.
            kept = writer is Writer.PROFILE and not field.readable
            if field.required and _writable(field, writer) and not kept and field.name not in extra:
                problems.add(f"{prefix}.{field.name}", f"{field.name} is required")
    return result
