"""``watchword settings``: every setting, its environment variable and its default.

Generated from the Settings model itself, so the list can never drift from what the
server reads; nested tables (``messages``) are listed key by key, as their variables are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from watchword_server.config import Settings

__all__ = ["SettingRow", "setting_rows", "settings_table"]

_PREFIX = "WATCHWORD_"


class SettingRow(NamedTuple):
    """One setting as ``watchword settings`` prints it."""

    name: str
    variable: str
    default: str


def setting_rows() -> Iterator[SettingRow]:
    """Every setting of the server, in the model's order."""
    for name, field in Settings.model_fields.items():
        default = _default(field)
        if isinstance(default, BaseModel):
            # A table: each key is a setting of its own (WATCHWORD_MESSAGES__LOGIN_INVALID).
            for key, value in default.model_dump(mode="json").items():
                variable = f"{_PREFIX}{name.upper()}__{key.upper()}"
                yield SettingRow(f"{name}.{key}", variable, _shown(value))
            continue
        yield SettingRow(name, f"{_PREFIX}{name.upper()}", _shown(default))


def settings_table() -> str:
    """The rows as an aligned table under a header, the long defaults last."""
    rows = [SettingRow("SETTING", "ENVIRONMENT VARIABLE", "DEFAULT"), *setting_rows()]
    name_width = max(len(row.name) for row in rows)
    variable_width = max(len(row.variable) for row in rows)
    return "\n".join(
        f"{row.name:<{name_width}}  {row.variable:<{variable_width}}  {row.default}".rstrip()
        for row in rows
    )


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _shown(value: Any) -> str:
    # As a TOML file or a JSON variable would say it; None is a setting left unset.
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    if isinstance(value, frozenset | set):
        return json.dumps(sorted(value))
    if isinstance(value, tuple):
        return json.dumps(list(value))
    return json.dumps(value)
