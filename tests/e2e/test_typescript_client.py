"""The TypeScript client's own tests (clients/typescript/test), run by node against a live server.

The client and its tests are compiled with tsc into a directory of this run's own (not the
package's dist/, which `npm run build` deletes and rewrites: two runs at once would delete
each other's output), then node's test runner runs the compiled tests with the server's
address and service keys in the environment. The server lives in this test's event loop, so
node runs as an asyncio subprocess: a blocking ``subprocess.run`` would stop the server from
answering.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import Running, StartServer
from tests.support.tls import make_pki

# A client's side of the contract: the SERIALIZABLE run skips it (see pyproject's markers).
pytestmark = pytest.mark.client_side

TS = Path(__file__).resolve().parents[2] / "clients" / "typescript"
# The tests in clients/typescript/test/*.test.ts; update when adding or removing one there.
EXPECTED_TESTS = 27
TIMEOUT_S = 300


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} is not on PATH: the TypeScript client needs Node.js 20"
    return path


@pytest.fixture(scope="module")
def compiled_tests(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The client and its tests compiled to a temporary directory (no server involved)."""
    tsc = TS / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "clients/typescript/node_modules is missing: run `make install`"
    _tool("node")  # tsc runs on it
    out = tmp_path_factory.mktemp("typescript")
    build = subprocess.run(
        [str(tsc), "-p", ".", "--outDir", str(out)],
        cwd=TS,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert build.returncode == 0, f"tsc failed:\n{build.stdout}\n{build.stderr}"
    # What node needs to run the output from there: ES modules, and the package's dependencies.
    (out / "package.json").write_text('{"type": "module", "private": true}\n')
    (out / "node_modules").symlink_to(TS / "node_modules", target_is_directory=True)
    tests = sorted((out / "test").glob("*.test.js"))
    assert tests, f"tsc produced no test/*.test.js in {out}"
    return tests


def test_the_tests_compile_outside_the_package(
    compiled_tests: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.getbasetemp()
    for test in compiled_tests:
        assert test.is_relative_to(base), test
        assert not test.resolve().is_relative_to(TS.resolve()), test


async def _node_test(tests: list[Path], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        _tool("node"),
        "--test",
        "--test-reporter=tap",
        *(str(test) for test in tests),
        cwd=tests[0].parent.parent,
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
    watchword: Running, start_server: StartServer, compiled_tests: list[Path], tmp_path: Path
) -> None:
    # test/tls.test.ts also needs a server that requires client certificates.
    pki = make_pki(tmp_path / "pki")
    client = pki.client_cert("ts-client")
    stranger = pki.client_cert("ts-stranger", issuer=make_pki(tmp_path / "stranger").ca)
    mutual_tls = await start_server(**pki.server_settings(client_auth=True))
    env = {key: value for key, value in os.environ.items() if not key.startswith("WATCHWORD_")}
    env.update(
        WATCHWORD_TARGET=f"http://{watchword.address}",
        WATCHWORD_ACCESS_KEY=watchword.access_key,
        WATCHWORD_ADMIN_KEY=watchword.admin_key,
        WATCHWORD_TLS_TARGET=f"https://{mutual_tls.address}",
        WATCHWORD_TLS_CA_FILE=str(pki.ca_file),
        WATCHWORD_TLS_CLIENT_CERT_FILE=str(client.cert_file),
        WATCHWORD_TLS_CLIENT_KEY_FILE=str(client.key_file),
        WATCHWORD_TLS_STRANGER_CERT_FILE=str(stranger.cert_file),
        WATCHWORD_TLS_STRANGER_KEY_FILE=str(stranger.key_file),
        # test/second_factors.test.ts computes TOTP codes at the server's (manual) clock.
        WATCHWORD_SERVER_TIME=str(int(watchword.clock.now().timestamp())),
    )
    returncode, output = await _node_test(compiled_tests, env)

    passed = re.search(r"^# pass (\d+)$", output, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", output, re.MULTILINE)
    assert returncode == 0, f"node --test exited with {returncode}:\n{output}"
    assert passed is not None and failed is not None, f"no TAP summary from node:\n{output}"
    assert (int(passed.group(1)), int(failed.group(1))) == (EXPECTED_TESTS, 0), output
