"""One version, one licence: VERSION is the only place the version is written; the server
reads it, and what cannot read it (the Python client, built from its own directory, and the
TypeScript package) must say the same, as must CHANGELOG.md's latest release."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import watchword
import watchword_server

REPO = Path(__file__).resolve().parents[2]
TS = REPO / "clients" / "typescript"
VERSION = (REPO / "VERSION").read_text(encoding="utf-8").strip()
LICENSE = "Apache-2.0"


def test_version_file_holds_one_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_the_server_reads_the_version_file() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"file": "VERSION"}
    # The installed metadata is from the last install: `make install` redoes it when
    # VERSION changes (it is among the stamp's prerequisites).
    assert metadata.version("watchword-server") == VERSION
    assert watchword_server.__version__ == VERSION


def test_watchword_version_prints_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watchword_server", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"watchword {VERSION}"


def test_the_python_client_says_the_same() -> None:
    assert watchword.__version__ == VERSION, "set watchword/__init__.py's __version__"
    assert metadata.version("watchword-client") == VERSION


def test_the_typescript_package_says_the_same() -> None:
    package = json.loads((TS / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((TS / "package-lock.json").read_text(encoding="utf-8"))
    assert package["version"] == VERSION, "set clients/typescript/package.json's version"
    # `npm install --package-lock-only` brings the lock file's two copies along.
    assert lock["version"] == VERSION
    assert lock["packages"][""]["version"] == VERSION


def test_the_changelog_names_the_version_as_its_latest_release() -> None:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", text, re.MULTILINE)
    assert releases, "CHANGELOG.md has no '## [X.Y.Z] - YYYY-MM-DD' heading"
    assert releases[0] == VERSION
    # Keep a Changelog: what is not released yet goes in an Unreleased section on top.
    assert text.index("## [Unreleased]") < text.index(f"## [{VERSION}]")


@pytest.mark.parametrize(
    "directory", [REPO, REPO / "clients" / "python", TS], ids=["server", "python", "typescript"]
)
def test_every_package_carries_the_licence(directory: Path) -> None:
    # Each package is built from its own directory, so each has its own copy.
    text = (directory / "LICENSE").read_text(encoding="utf-8")
    assert text == (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_the_licence_is_in_the_metadata() -> None:
    for name in ("watchword-server", "watchword-client"):
        distribution = metadata.metadata(name)
        assert distribution["License-Expression"] == LICENSE, name
        assert distribution.get_all("License-File") == ["LICENSE"], name
    package = json.loads((TS / "package.json").read_text(encoding="utf-8"))
    assert package["license"] == LICENSE
    assert "private" not in package, "the TypeScript client is meant to be installed"
