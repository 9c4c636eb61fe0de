"""The benchmark's figures, their targets, and the table and JSON they are reported as."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Figure", "Report", "Target", "at_least", "at_most"]

MEASURED = "measured"


@dataclass(frozen=True)
class Target:
    """What a figure should reach on this machine (from issue 8)."""

    op: Literal[">=", "<="]
    bound: float

    def met(self, value: float) -> bool:
        """Whether ``value`` reaches the target."""
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.bound:g}"


def at_least(bound: float) -> Target:
    """A target of ``bound`` or more."""
    return Target(">=", bound)


def at_most(bound: float) -> Target:
    """A target of ``bound`` or less."""
    return Target("<=", bound)


@dataclass(frozen=True)
class Figure:
    """One line of the report.

    Attributes:
        id: The scenario, ``B1`` … ``B7`` or ``workers``.
        name: What the figure is, e.g. ``HasPermission ÷ Health/Check, warm caches``.
        value: The figure (a ratio, or ``unit``); ``None`` when not measured.
        unit: ``""`` for a ratio, else e.g. ``"µs"``.
        target: The target, if the issue sets one.
        detail: The measured numbers behind the figure, for a reader.
        numbers: The same numbers for machines (JSON).
        status: ``measured``, or why not (``not available: …``, ``skipped: …``).
    """

    id: str
    name: str
    value: float | None
    unit: str = ""
    target: Target | None = None
    detail: str = ""
    numbers: Mapping[str, float] = field(default_factory=dict)
    status: str = MEASURED

    @property
    def met(self) -> bool | None:
        """Whether the target is met; ``None`` without a target or a value."""
        if self.target is None or self.value is None:
            return None
        return self.target.met(self.value)

    @classmethod
    def missing(cls, id: str, name: str, status: str, target: Target | None = None) -> Figure:
        """A figure that was not measured, and why."""
        return cls(id, name, None, target=target, status=status)


@dataclass
class Report:
    """Every figure of one run, with how each scenario was measured."""

    figures: list[Figure] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    def add(self, figures: Sequence[Figure], method: str) -> None:
        """Add a scenario's figures and the sentence that says how they were measured."""
        self.figures.extend(figures)
        for figure in figures:
            self.methods.setdefault(figure.id, method)

    def table(self) -> str:
        """The figures as a plain-text table, then how each was measured."""
        rows = [("", "figure", "value", "target", "met", "measured")]
        for figure in self.figures:
            rows.append(
                (
                    figure.id,
                    figure.name,
                    _value(figure),
                    str(figure.target) if figure.target else "",
                    {True: "yes", False: "NO", None: ""}[figure.met],
                    figure.detail if figure.status == MEASURED else figure.status,
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        lines = []
        for index, row in enumerate(rows):
            cells = [row[column].ljust(widths[column]) for column in range(5)]
            cells[2] = row[2].rjust(widths[2])
            lines.append("  ".join([*cells, row[5]]).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in widths) + "  --------")
        lines.append("")
        lines += [f"{name}: {method}" for name, method in self.methods.items()]
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        """Write the report as JSON to ``path``."""
        figures = []
        for figure in self.figures:
            item = asdict(figure)
            item["target"] = str(figure.target) if figure.target else None
            item["met"] = figure.met
            item["numbers"] = dict(figure.numbers)
            figures.append(item)
        document = {**self.context, "figures": figures, "methods": self.methods}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _value(figure: Figure) -> str:
    if figure.value is None:
        return "-"
    if not math.isfinite(figure.value):
        return str(figure.value)
    digits = 2 if abs(figure.value) < 100 else 0
    text = f"{figure.value:,.{digits}f}"
    return f"{text} {figure.unit}" if figure.unit else text
