"""What an import did, or would do: counts per kind of row and the lines to read."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KINDS", "Counts", "ImportReport"]

KINDS = ("user", "group", "membership", "permission", "event")


@dataclass
class Counts:
    """One kind of row: ``added`` new rows; ``merged`` rows that became a row existing
    already (a duplicate membership or grant, a group of the same name); ``before`` rows
    a previous run brought in; ``skipped`` rows left out (the report says why)."""

    added: int = 0
    merged: int = 0
    before: int = 0
    skipped: int = 0


@dataclass
class ImportReport:
    """The outcome of one run.

    ``conflicts`` are users that cannot be brought in as they are (an address another
    user has whatever its case, an invalid address or field): with any of them nothing is
    written unless the run was told to skip them, and ``stopped`` says they stopped it (or
    would have, on a dry run). ``notes`` say what was changed or left out on purpose.
    ``written`` is whether the rows were committed.
    """

    source: str
    dry_run: bool
    counts: dict[str, Counts] = field(default_factory=lambda: {kind: Counts() for kind in KINDS})
    conflicts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: bool = False
    written: bool = False

    @property
    def changes(self) -> int:
        """How many rows the run adds or links (0: the target already has everything)."""
        return sum(counts.added + counts.merged for counts in self.counts.values())
