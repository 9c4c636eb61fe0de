"""The configurable texts: placeholders filled, unknown ones left empty, broken ones told."""

from __future__ import annotations

import pytest

from watchword_server.templates import TemplateError, render


def test_placeholders_are_filled_and_unknown_ones_left_empty() -> None:
    assert render("Hello {name}, see {link}", {"name": "Ada", "link": "https://x"}) == (
        "Hello Ada, see https://x"
    )
    assert render("Hello {name}{missing}!", {"name": "Ada"}) == "Hello Ada!"
    assert render("{{literal}} braces", {}) == "{literal} braces"


@pytest.mark.parametrize("template", ["unclosed {name", "{0}", "{name.attr}", "{name!z}"])
def test_a_malformed_template_raises_a_template_error(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, {"name": "Ada"})
