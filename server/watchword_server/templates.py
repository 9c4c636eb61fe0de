"""Rendering of the configurable texts (``messages``): one forgiving ``str.format``."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["TemplateError", "render"]

# What a broken operator template can raise from str.format_map.
TemplateError = (ValueError, IndexError, KeyError, AttributeError, TypeError)


class _Blank(dict[str, object]):
    """Leaves unknown placeholders empty, so a customized text never breaks a flow."""

    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill ``{name}`` placeholders from ``values``; unknown names become empty.

    Raises one of ``TemplateError`` for a malformed template (settings check every
    template at start, so this only happens to texts built elsewhere).
    """
    return template.format_map(_Blank(values))
