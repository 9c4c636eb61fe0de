"""B1i's counter: a program run under callgrind is counted, zeroed and dumped as B1i does
it with the server (which is too slow under valgrind for the test suite)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.scenarios.instructions import Callgrind, callgrind_unavailable, total_instructions

pytestmark = pytest.mark.skipif(
    callgrind_unavailable() is not None, reason="valgrind is not installed"
)

# Busy for a while, then idle until killed: the counts of the two phases differ.
_PROGRAM = (
    "import time\n"
    "x = sum(i * i for i in range(300_000))\n"
    "print('busy done', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_finished_run_dumps_its_instructions(tmp_path: Path) -> None:
    callgrind = Callgrind(tmp_path)
    subprocess.run([*callgrind.prefix(), "/bin/true"], check=True, capture_output=True, timeout=60)
    (dump,) = tmp_path.glob("callgrind.out.*")
    assert total_instructions(dump) > 10_000  # the dynamic loader alone runs more


def test_zero_then_dump_counts_only_what_ran_in_between(tmp_path: Path) -> None:
    callgrind = Callgrind(tmp_path)
    process = subprocess.Popen(  # noqa: S603 - valgrind and our interpreter
        [*callgrind.prefix(), sys.executable, "-c", _PROGRAM],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"busy done\n"
        busy = callgrind.dump(process.pid)  # start-up and the busy loop
        callgrind.zero(process.pid)
        time.sleep(0.5)
        idle = callgrind.dump(process.pid)  # half a second of sleep
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    assert busy > 10_000_000
    assert 0 <= idle < busy / 100


def test_a_file_that_is_no_dump_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "callgrind.out.1.1"
    other.write_bytes(b"events: Ir\n")
    with pytest.raises(ValueError, match="not a callgrind dump"):
        total_instructions(other)
