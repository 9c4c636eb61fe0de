"""The TypeScript client as another project gets it: `npm pack` (whose `prepare` script builds
dist/), installed into a fresh npm project outside the repository, imported by name from a
plain .mjs script that registers, logs in and introspects against a live server.

No network: npm is given an empty cache of this test's own, `--offline`, and a registry on a
loopback port where nothing listens, so any attempt to reach a registry fails the install.
The client's runtime dependencies come as tarballs packed from clients/typescript/node_modules
(`make install` put them there), named in the fresh project as `file:` dependencies, which
satisfy the client's own ranges. The project is made once per module (no server involved);
the script then runs against each backend's server, which lives in the test's event loop, so
node runs as an asyncio subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port
from tests.support.servers import Running

# A client's side of the contract: the SERIALIZABLE run skips it (see pyproject's markers).
pytestmark = pytest.mark.client_side

REPO = Path(__file__).resolve().parents[2]
TS = REPO / "clients" / "typescript"
TIMEOUT_S = 120

CONSUMER = """\
import { createWatchwordClient, WatchwordError } from "@watchword/client";

const client = createWatchwordClient({ baseUrl: process.env.WATCHWORD_TARGET, timeoutMs: 10_000 });
const email = "grace@example.com";
const password = "correct horse battery";
try {
  await client.auth.register({ email, password, firstName: "Grace", lastName: "Hopper" });
  const { sessionToken } = await client.auth.authenticate({ email, password });
  const { user } = await client.auth.introspect({ sessionToken });
  let refused = "";
  try {
    await client.auth.authenticate({ email, password: "not the password" });
  } catch (err) {
    refused = err instanceof WatchwordError ? err.reason : String(err);
  }
  console.log(JSON.stringify({ email: user.email, refused }));
} finally {
  client.close();
}
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not on PATH: the TypeScript client needs Node.js 20"
    return path


def _npm_env(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WATCHWORD_", "npm_", "NPM_"))
    }
    # Nothing but this test's own, empty cache, and a registry that cannot answer.
    env.update(
        npm_config_cache=str(home / "npm-cache"),
        npm_config_registry=f"http://127.0.0.1:{free_port()}/",
        npm_config_offline="true",
        npm_config_audit="false",
        npm_config_fund="false",
        npm_config_update_notifier="false",
        npm_config_userconfig=str(home / "npmrc"),
    )
    return env


def _npm(*args: str | Path, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [_tool("npm"), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"npm {args} failed:\n{result.stderr}{result.stdout}"
    return result.stdout


def _pack(folder: Path, into: Path, env: dict[str, str]) -> dict[str, Any]:
    out = _npm("pack", "--json", "--pack-destination", into, folder, cwd=into, env=env)
    # `prepare`'s own output comes before the JSON on stdout.
    packed = json.loads(out[out.index("[") :])
    assert isinstance(packed, list) and len(packed) == 1, packed
    result: dict[str, Any] = packed[0]
    return result


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh npm project outside the repository with the packed client installed."""
    assert (TS / "node_modules" / ".bin" / "tsc").exists(), "run `make install`"
    home = tmp_path_factory.mktemp("typescript-install")
    assert not home.resolve().is_relative_to(REPO.resolve())
    env = _npm_env(home)
    tarballs = home / "tarballs"
    tarballs.mkdir()

    # Pack from a copy without dist/, so `prepare` must build it, and two runs at once do
    # not delete each other's build; its dev tools are the checkout's.
    source = home / "client"
    shutil.copytree(TS, source, ignore=shutil.ignore_patterns("node_modules", "dist"))
    (source / "node_modules").symlink_to(TS / "node_modules", target_is_directory=True)
    client = _pack(source, tarballs, env)
    files = {str(entry["path"]) for entry in client["files"]}
    assert {"dist/src/index.js", "dist/src/index.d.ts", "package.json", "LICENSE"} <= files
    assert not any(path.startswith("dist/test") for path in files), sorted(files)

    package = json.loads((TS / "package.json").read_text(encoding="utf-8"))
    wanted = [tarballs / str(client["filename"])]
    for name in package["dependencies"]:
        wanted.append(tarballs / str(_pack(TS / "node_modules" / name, tarballs, env)["filename"]))

    app = home / "app"
    app.mkdir()
    (app / "package.json").write_text(
        '{"name": "consumer", "version": "1.0.0", "private": true, "type": "module"}\n'
    )
    _npm("install", "--loglevel=error", *wanted, cwd=app, env=env)
    installed = app / "node_modules" / "@watchword" / "client"
    assert not installed.is_symlink() and (installed / "dist" / "src" / "index.js").exists()
    (app / "main.mjs").write_text(CONSUMER)
    return app


async def test_a_fresh_project_imports_the_packed_client_and_calls_a_server(
    watchword: Running, consumer: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env["WATCHWORD_TARGET"] = f"http://{watchword.address}"
    process = await asyncio.create_subprocess_exec(
        _tool("node"),
        "main.mjs",
        cwd=consumer,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {"email": "grace@example.com", "refused": "INVALID_CREDENTIALS"}
