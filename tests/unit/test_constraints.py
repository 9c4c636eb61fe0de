"""constraints.txt pins exactly what our packages need, at the versions installed here.

`make install` installs with ``-c constraints.txt``; `make lock` re-resolves from scratch and
rewrites it. This check needs no network: it walks the installed distributions' own
requirements from watchword-server[dev] and watchword-client, and compares what it finds
with the file. A dependency added to a pyproject.toml without `make lock`, a pin left behind
by one removed, or an install that drifted from the file fails here.
"""

from __future__ import annotations

import re
from collections import deque
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"
# Our own editable installs (the roots of the walk), and the installer itself, which
# `pip freeze` leaves out.
ROOTS = {"watchword-server": {"dev"}, "watchword-client": set[str]()}
UNPINNED = {"pip", "setuptools", *ROOTS}


def _pins() -> dict[NormalizedName, Version]:
    pins: dict[NormalizedName, Version] = {}
    for number, line in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match is not None, f"constraints.txt:{number}: not NAME==VERSION: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt:{number}: {name} is pinned twice"
        pins[name] = Version(match.group(2))
    return pins


def _needed() -> dict[NormalizedName, Version]:
    """Every distribution our packages need here (markers evaluated), and its version."""
    found: dict[NormalizedName, Version] = {}
    extras_seen: dict[NormalizedName, set[str]] = {}
    queue: deque[tuple[str, set[str]]] = deque(ROOTS.items())
    while queue:
        name, extras = queue.popleft()
        key = canonicalize_name(name)
        if key in extras_seen and extras <= extras_seen[key]:
            continue
        extras_seen.setdefault(key, set()).update(extras)
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            message = f"{name} is needed but not installed: run `make install`"
            raise AssertionError(message) from None
        found[key] = Version(distribution.version)
        for text in distribution.requires or []:
            requirement = Requirement(text)
            wanted = (
                requirement.marker is None
                or any(requirement.marker.evaluate({"extra": extra}) for extra in extras)
                or requirement.marker.evaluate({"extra": ""})
            )
            if wanted:
                queue.append((requirement.name, set(requirement.extras)))
    return found


def test_constraints_pin_what_is_installed() -> None:
    pins, needed = _pins(), _needed()
    needed = {name: version for name, version in needed.items() if name not in UNPINNED}
    missing = sorted(set(needed) - set(pins))
    stale = sorted(set(pins) - set(needed))
    drifted = sorted(
        f"{name} {needed[name]} installed, {pins[name]} pinned"
        for name in set(needed) & set(pins)
        if needed[name] != pins[name]
    )
    problems = [
        f"{what}: {names}"
        for what, names in (
            ("needed but not in constraints.txt", missing),
            ("pinned but needed by nothing", stale),
            ("installed versions differ from constraints.txt", drifted),
        )
        if names
    ]
    assert not problems, "; ".join(problems) + " (run `make lock`, then `make install`)"


def test_the_serving_dependencies_are_a_part_of_it() -> None:
    # `make run` installs watchword-server without [dev] against the same file.
    pins = _pins()
    server = metadata.distribution("watchword-server")
    for text in server.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None and canonicalize_name(requirement.name) not in UNPINNED:
            assert canonicalize_name(requirement.name) in pins, requirement.name
            assert pins[canonicalize_name(requirement.name)] in requirement.specifier, text
