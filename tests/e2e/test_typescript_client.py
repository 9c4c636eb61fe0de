"""The TypeScript client's own tests (clients/typescript/test), run by node against a live server.

The client is compiled with its package's `build` script (tsc), then node's test runner runs
the compiled tests with the server's address and service keys in the environment. The server
lives in this test's event loop, so node runs as an asyncio subprocess: a blocking
``subprocess.run`` would stop the server from answering.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Running

TS = Path(__file__).resolve().parents[2] / "clients" / "typescript"
# The tests in clients/typescript/test/*.test.ts; update when adding or removing one there.
EXPECTED_TESTS = 13
TIMEOUT_S = 300


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not on PATH: the TypeScript client needs Node.js 20"
    return path


@pytest.fixture(scope="module")
def compiled_tests() -> list[Path]:
    """The client and its tests compiled to clients/typescript/dist (no server involved)."""
    assert (TS / "node_modules" / ".bin" / "tsc").exists(), (
        "clients/typescript/node_modules is missing: run `make install`"
    )
    build = subprocess.run(
        [_tool("npm"), "run", "--silent", "build"],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert build.returncode == 0, f"npm run build failed:\n{build.stdout}\n{build.stderr}"
    tests = sorted((TS / "dist" / "test").glob("*.test.js"))
    assert tests, "the build produced no dist/test/*.test.js"
    return tests


async def _node_test(tests: list[Path], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        _tool("node"),
        "--test",
        "--test-reporter=tap",
        *(str(test.relative_to(TS)) for test in tests),
        cwd=TS,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_typescript_client_against_a_live_server(
    watchword: Running, compiled_tests: list[Path]
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env.update(
        WATCHWORD_TARGET=f"http://{watchword.address}",
        WATCHWORD_ACCESS_KEY=watchword.access_key,
        WATCHWORD_ADMIN_KEY=watchword.admin_key,
    )
    returncode, output = await _node_test(compiled_tests, env)

    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", output, re.MULTILINE)
    assert returncode == 0, f"node --test exited with {returncode}:\n{output}"
    assert passed is not None and failed is not None, f"no TAP summary from node:\n{output}"
    assert (int(passed.group(1)), int(failed.group(1))) == (EXPECTED_TESTS, 0), output
