"""The real ``watchword`` command line, run in a process of its own against a test database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.support.servers import TEST_PEPPER

__all__ = ["complaint", "watchword", "watchword_cli"]


def watchword_cli(
    database_url: str | None,
    *arguments: str,
    stdin: str = "",
    pepper: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m watchword_server ARGUMENTS`` with only these WATCHWORD_* variables:
    the database (unless None: a --config file names it), the test pepper (unless ``pepper``
    is false), cheap bcrypt and ``env``."""
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")
    }
    if database_url is not None:
        environment["WATCHWORD_DATABASE_URL"] = database_url
    environment["WATCHWORD_HMAC_ALG"] = "bcrypt(4)"
    if pepper:
        environment["WATCHWORD_HMAC_KEY"] = TEST_PEPPER
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "watchword_server", *arguments],
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


_COMMAND = [sys.executable, "-m", "watchword_server"]


def watchword(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with only our test's WATCHWORD_* variables set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env.update({"WATCHWORD_HMAC_KEY": TEST_PEPPER, **variables})
    return subprocess.run(
        [*_COMMAND, *arguments], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def complaint(result: subprocess.CompletedProcess[str]) -> str:
    """The one line the CLI printed about the problem (log lines of libraries aside)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("watchword:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]
