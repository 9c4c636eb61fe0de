"""The README's snippet works against the server that `make run` starts (embedded default)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.support.net import free_port

# A client's side of the contract: the SERIALIZABLE run skips it (see pyproject's markers).
pytestmark = pytest.mark.client_side

REPO = Path(__file__).resolve().parents[2]


def _snippet(section: str = "") -> str:
    """The first Python snippet of the README, or of its section with this heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    if section:
        text = text[text.index(f"\n## {section}\n") :]
    match = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert match is not None, "the README has no Python snippet"
    return match.group(1)


def _run_against_make_run(tmp_path: Path, snippet: str) -> subprocess.CompletedProcess[str]:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env.update(
        WATCHWORD_REGISTRATION_VERIFICATION="false",
        WATCHWORD_LISTEN=f"127.0.0.1:{port}",
        WATCHWORD_HMAC_ALG="bcrypt(4)",
        WATCHWORD_SHUTDOWN_DRAIN_SECONDS="0",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "watchword_server", "serve"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        return subprocess.run(
            [sys.executable, "-c", snippet.replace("127.0.0.1:50051", f"127.0.0.1:{port}")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_readme_two_step_login_snippet_runs(tmp_path: Path) -> None:
    result = _run_against_make_run(tmp_path, _snippet("Two-step login (TOTP and recovery codes)"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("grace@example.com ")


def test_readme_snippet_registers_and_logs_in(tmp_path: Path) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    # What `make run` sets; the rest is the embedded default, in a directory of its own.
    env.update(
        WATCHWORD_REGISTRATION_VERIFICATION="false",
        WATCHWORD_LISTEN=f"127.0.0.1:{port}",
        WATCHWORD_HMAC_ALG="bcrypt(4)",
        WATCHWORD_SHUTDOWN_DRAIN_SECONDS="0",  # stopped at once: draining is test_drain's
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "watchword_server", "serve"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        snippet = _snippet().replace("127.0.0.1:50051", f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, "-c", snippet],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("ada@example.com ")
        assert (tmp_path / "watchword.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
