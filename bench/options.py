"""What a benchmark run is asked to do: durations, sizes and which scenarios."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_JSON", "PBKDF2_ALG", "SCENARIOS", "Options"]

SCENARIOS = ("B1", "B1i", "B2", "B3", "B4", "B5", "B6", "B7", "workers")
"""Every scenario, in the order they are reported."""

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"

# The original module's default: about 2 ms of hashing, so a login's own cost shows (B7).
PBKDF2_ALG = "pbkdf2(2000,20,sha512)"


@dataclass(frozen=True)
class Options:
    """One run's settings; the defaults are ``make bench``'s (under 5 minutes).

    Attributes:
        duration: Seconds each measured h2load run lasts (counted runs aim at it).
        warmup: Seconds of load, not measured, before a call is first measured on a server.
        rounds: Measurements of each figure, interleaved with its reference.
        users: Users of the everyday database (B1-B3, B5-B7, workers; B4's small side).
        large: Run B4 (builds a database of ``large_users`` users first).
        large_users: Users of B4's large database.
        instructions: Run B1i (the server under callgrind; a few minutes).
        instruction_calls: Calls per counted run of B1i.
        memberships_per_user: Groups each seeded user belongs to.
        bcrypt_cost: The cost of the login hash for B2 and B3 (the server's default is 12).
        client_calls: Calls per timing in B6 (in-process, so many are cheap).
        max_steal: The most CPU steal, in percent, a counted triple may have run under
            (see ``bench/steal.py``); 100 counts every triple.
        scenarios: The scenarios to run (B4 also needs ``large``).
        json_path: Where the JSON report goes; ``None`` for nowhere.
    """

    duration: float = 2.0
    warmup: float = 1.0
    rounds: int = 3
    users: int = 1000
    large: bool = False
    large_users: int = 1_000_000
    instructions: bool = False
    instruction_calls: int = 2_000
    memberships_per_user: int = 5
    bcrypt_cost: int = 12
    client_calls: int = 20_000
    max_steal: float = 5.0
    scenarios: frozenset[str] = field(default_factory=lambda: frozenset(SCENARIOS))
    json_path: Path | None = DEFAULT_JSON

    @property
    def login_alg(self) -> str:
        """The ``hmac_alg`` of the everyday servers and of the seeded users' hashes."""
        return f"bcrypt({self.bcrypt_cost})"

    def wants(self, scenario: str) -> bool:
        """Whether ``scenario`` is to run."""
        return scenario in self.scenarios
