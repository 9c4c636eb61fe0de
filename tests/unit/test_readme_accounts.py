"""The READMEs create the same first admin the same way: `root@example.com` made in the root
README can log in to the bloggy demo as its README says, and the other way round."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
READMES = [REPO / "README.md", REPO / "examples" / "bloggy" / "README.md"]
CREATE = re.compile(r"^echo '([^']+)' \| \.venv/bin/watchword users create (\S+)", re.MULTILINE)


def _created() -> dict[str, set[tuple[str, Path]]]:
    found: dict[str, set[tuple[str, Path]]] = {}
    for readme in READMES:
        for password, email in CREATE.findall(readme.read_text(encoding="utf-8")):
            found.setdefault(email, set()).add((password, readme.relative_to(REPO)))
    return found


def test_each_address_gets_one_password_in_every_readme() -> None:
    created = _created()
    assert "root@example.com" in created
    assert {readme for _, readme in created["root@example.com"]} == {
        readme.relative_to(REPO) for readme in READMES
    }
    for email, uses in created.items():
        assert len({password for password, _ in uses}) == 1, (email, sorted(uses))


def test_the_bloggy_snippet_logs_in_with_that_password() -> None:
    # tests/e2e/test_bloggy.py runs the snippet with its own password (--password).
    (password,) = {password for password, _ in _created()["root@example.com"]}
    snippet = (REPO / "examples" / "bloggy" / "call.py").read_text(encoding="utf-8")
    assert 'email="root@example.com", password=password' in snippet
    assert f'"--password", default="{password}"' in snippet
