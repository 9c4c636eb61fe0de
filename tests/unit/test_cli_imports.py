"""`watchword` imports what a command needs only when that command runs: `--help` and
`settings` start without the database libraries, and nothing but `serve` imports gRPC
(that part is a lint-imports contract in pyproject.toml)."""

from __future__ import annotations

import json
import subprocess
import sys

# One fresh interpreter: what it imported is what a `watchword settings` process imports.
_PROBE = """
import contextlib, io, json, sys
import watchword_server.cli as cli
at_start = sorted(sys.modules)
with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(["settings"])
print(json.dumps({"status": status, "at_start": at_start, "settings": sorted(sys.modules)}))
"""

_HEAVY = ("grpc", "sqlalchemy", "psycopg", "alembic", "rich", "prometheus_client")


def _loaded(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [name for name in modules if name.split(".")[0] in roots]


def test_help_and_settings_import_neither_the_server_nor_the_database() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(probe.stdout)
    assert seen["status"] == 0
    assert _loaded(seen["at_start"], (*_HEAVY, "pydantic")) == []
    assert _loaded(seen["settings"], _HEAVY) == []
    server_or_storage = ("app", "transport", "wiring", "storage")
    ours = [name.split(".")[1] for name in seen["settings"] if name.startswith("watchword_server.")]
    assert [room for room in ours if room in server_or_storage] == []
