"""The benchmark, end to end at a tiny size, so that its code cannot rot.

It runs through the same entry point as ``make bench`` (real servers, real PostgreSQL,
h2load) with tiny durations and a tiny seed, and checks that every scenario reports a
positive figure. Not whether the figures meet their targets: timings do not belong in
tests.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import pytest

from bench.cli import main
from bench.options import SCENARIOS
from bench.server import workers_supported
from tests.support.postgres import MODE_ENV, URL_ENV

_TINY = [
    "--duration=0.2",
    "--warmup=0.1",
    "--rounds=1",
    "--users=20",
    "--bcrypt-cost=4",
    "--large",
    "--large-users=200",
    "--client-calls=500",
]


def test_every_scenario_reports_a_positive_figure(
    tmp_path: Path,
    postgres_server_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert shutil.which("h2load"), "h2load is missing: `make install` installs it"
    # The server this test run already uses, however it was found.
    monkeypatch.setenv(URL_ENV, postgres_server_url)
    monkeypatch.delenv(MODE_ENV, raising=False)
    results = tmp_path / "results.json"

    status = main([*_TINY, f"--json={results}"])

    table = capsys.readouterr().out
    report = json.loads(results.read_text())
    figures = report["figures"]
    assert status == 0, table
    # B1 has three checks, each with warm caches, with caches off and with nothing cached.
    assert Counter(figure["id"] for figure in figures) == {
        **dict.fromkeys(SCENARIOS, 1),
        "B1": 9,
    }
    for figure in figures:
        if figure["id"] == "workers" and not workers_supported():
            assert figure["status"].startswith("not available"), figure
            continue
        if figure["id"] == "B1i":
            # Under callgrind the server takes minutes: tests/bench/test_instructions.py
            # covers its counter; here it must say how to turn it on.
            assert figure["status"] == "skipped: needs --instructions", figure
            continue
        assert figure["status"] == "measured", figure
        assert math.isfinite(figure["value"]) and figure["value"] > 0, figure
        assert all(value > 0 for value in figure["numbers"].values()), figure
        assert figure["id"] in report["methods"]
        assert figure["name"] in table
    assert set(report["options"]["scenarios"]) == set(SCENARIOS)
    assert report["cores"] >= 1
