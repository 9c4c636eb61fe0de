"""The settings' documentation cannot drift from the model: the README's table,
docs/watchword.example.toml and `watchword settings` each name every setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from watchword_server.config import Messages, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "watchword.example.toml"
SETTINGS = set(Settings.model_fields)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("WATCHWORD_"):
            monkeypatch.delenv(key)


def _readme_table_names() -> set[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z0-9_]+)`", line.split("|")[1]))
    return names


def test_the_readme_table_lists_every_setting_and_no_other() -> None:
    names = _readme_table_names()
    assert SETTINGS - names == set(), "settings missing from README.md's table"
    assert names - SETTINGS == set(), "README.md's table names settings that do not exist"


def test_the_example_file_loads_and_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings().model_dump()
    monkeypatch.setenv("WATCHWORD_CONFIG", str(EXAMPLE))
    # Every value set there is the default, so it loads into exactly the default settings.
    assert load_settings().model_dump() == defaults


def test_the_example_file_names_real_settings_and_all_of_them() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    written = tomllib.loads(text)
    assert set(written) - SETTINGS == set(), "keys of the example that are no settings"
    assert set(written["messages"]) - set(Messages.model_fields) == set()
    top_level = text[: text.index("\n[messages]")]
    commented = set(re.findall(r"^# ([a-z0-9_]+) = ", top_level, re.MULTILINE))
    assert commented - SETTINGS == set(), "commented keys of the example that are no settings"
    assert SETTINGS - set(written) - commented == set(), "settings the example does not show"


def test_the_settings_command_lists_every_setting_with_its_variable() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    # Settings that could not load must not stop it: it shows the defaults only.
    env["WATCHWORD_SESSION_EXPIRATION"] = "not a number"
    listed = subprocess.run(
        [sys.executable, "-m", "watchword_server", "settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split(None, 2) for line in listed.stdout.splitlines()[1:]]
    shown = {row[0]: (row[1], row[2] if len(row) > 2 else "") for row in rows}
    expected = {name for name in SETTINGS if name != "messages"} | {
        f"messages.{key}" for key in Messages.model_fields
    }
    assert set(shown) == expected
    assert shown["session_expiration"] == ("WATCHWORD_SESSION_EXPIRATION", "3600")
    assert shown["hmac_key"] == ("WATCHWORD_HMAC_KEY", "(unset)")
    assert shown["trusted_proxies"][1] == '["127.0.0.1", "::1"]'
    assert shown["messages.login_invalid"] == (
        "WATCHWORD_MESSAGES__LOGIN_INVALID",
        "Invalid credentials",
    )
