"""Every command and subcommand of `watchword` answers --help with what it does."""

from __future__ import annotations

import pytest

from watchword_server.cli import main

COMMANDS = [
    ("serve",),
    ("migrate",),
    ("settings",),
    ("keys",),
    ("keys", "create"),
    ("keys", "list"),
    ("keys", "revoke"),
    ("mail",),
    ("mail", "dead"),
    ("mail", "retry"),
    ("users",),
    ("users", "create"),
    ("users", "block"),
    ("users", "allow"),
    ("users", "disable"),
    ("users", "approve"),
    ("users", "list"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help(command: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: watchword {' '.join(command)}")
    description = out.split("\n\n")[1]
    assert description.strip() and not description.startswith(("options:", "positional"))


def test_serve_names_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in ("--listen HOST:PORT", "--config FILE", "--workers N"):
        assert flag in out


def test_a_config_file_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "list", "--config", "/nonexistent/watchword.toml"]) == 2
    assert (
        capsys.readouterr().err == "watchword: --config /nonexistent/watchword.toml: no such file\n"
    )
