"""The client installs alone (grpcio, protobuf and googleapis-common-protos) and decodes real
server errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.servers import Running

# A client's side of the contract: the SERIALIZABLE run skips it (see pyproject's markers).
pytestmark = pytest.mark.client_side

ROOT = Path(__file__).parents[2]
# googleapis-common-protos carries google.rpc.Status (BatchCheck's per-check errors); grpcio's
# own dependency typing-extensions comes with it; the rest is the venv's tooling.
ALLOWED = {
    "grpcio",
    "protobuf",
    "googleapis-common-protos",
    "typing-extensions",
    "watchword-client",
    "pip",
    "setuptools",
}
SERVER_ONLY = {"grpcio-status", "sqlalchemy", "pydantic", "bcrypt", "psycopg"}

PROBE = """
import json, os, sys
import watchword
from watchword import AsyncClient, Client
from watchword.auth.v1 import access_service_pb2, auth_service_pb2_grpc

# BatchCheck results carry a google.rpc.Status per check.
assert access_service_pb2.CheckResult().error.DESCRIPTOR.full_name == "google.rpc.Status"

out = {"file": watchword.__file__, "stub": auth_service_pb2_grpc.AuthServiceStub.__name__}
out["typed"] = os.path.exists(os.path.join(os.path.dirname(watchword.__file__), "py.typed"))
with Client(sys.argv[1]) as client:
    try:
        client.authenticate(email="nobody@example.com", password="whatever!")
    except watchword.Unauthenticated as error:
        out["reason"], out["domain"] = error.reason, error.domain
    try:
        client.register(email="ada@example.com", password="short", first_name="A", last_name="B")
    except watchword.InvalidArgument as error:
        out["violations"] = sorted(error.violation_fields)
print(json.dumps(out))
"""


def _clean_env() -> dict[str, str]:
    # Nothing from this test run's interpreter may leak into the fresh venv.
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {key: value for key, value in os.environ.items() if key not in drop}


async def _run(*command: str | Path, cwd: Path, timeout: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *map(str, command),
        cwd=cwd,
        env=_clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"{command} failed:\n{stderr.decode()}{stdout.decode()}"
    return stdout.decode()


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


async def test_client_installs_alone_and_decodes_server_errors(
    watchword: Running, tmp_path: Path
) -> None:
    # Build from a copy so the source tree gets no build/ or egg-info droppings.
    source = tmp_path / "client"
    shutil.copytree(
        ROOT / "clients" / "python",
        source,
        ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"),
    )
    venv = tmp_path / "venv"
    await _run(sys.executable, "-m", "venv", venv, cwd=tmp_path, timeout=60)
    python, pip = venv / "bin" / "python", venv / "bin" / "pip"
    await _run(
        pip, "install", "--quiet", "-c", ROOT / "constraints.txt", source, cwd=tmp_path, timeout=120
    )

    listed = json.loads(await _run(pip, "list", "--format=json", cwd=tmp_path, timeout=30))
    installed = {_normalize(package["name"]) for package in listed}
    assert {"grpcio", "protobuf", "watchword-client"} <= installed
    assert installed <= ALLOWED, installed - ALLOWED
    assert not installed & SERVER_ONLY

    # The probe is blocking; the server runs on this event loop, which stays free meanwhile.
    out = json.loads(await _run(python, "-c", PROBE, watchword.address, cwd=tmp_path, timeout=30))
    assert Path(out["file"]).is_relative_to(venv)
    assert out["stub"] == "AuthServiceStub"
    assert out["typed"], "py.typed is missing from the installed package"
    assert (out["reason"], out["domain"]) == ("INVALID_CREDENTIALS", "watchword.auth.v1")
    assert out["violations"] == ["password"]
