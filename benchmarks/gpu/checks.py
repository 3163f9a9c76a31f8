"""Rows of the GPU check: :class:`benchmarks.common.Row`, plus rows that read ``n/a``.

A row whose measurement is missing (no CUDA, the deadline passed, the measurement raised)
reads ``n/a (<why>)`` with the detail in its notes: a missing measurement is not a FAIL. Rows
whose two numbers are not a ratio (a correctness check's expected and measured values) show
``-`` in the ratio cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from benchmarks.common import Row, fmt

NO_CUDA, DEADLINE, ERROR = "no CUDA", "deadline", "error"


@dataclass
class Check(Row):
    """A row that may be missing (``missing`` says why) or have no meaningful ratio."""

    missing: str = ""
    show_ratio: bool = True

    @property
    def result(self) -> str:
        return f"n/a ({self.missing})" if self.missing else ("PASS" if self.passed else "FAIL")

    def cells(self) -> list[str]:
        if self.missing:
            return [self.id, self.name, "n/a", "n/a", "n/a", self.target, self.result, self.notes]
        ratio = fmt(self.ratio) if self.show_ratio else "-"
        return [self.id, self.name, f"{fmt(self.reference)} {self.unit}",
                f"{fmt(self.kdtune)} {self.unit}", ratio, self.target, self.result, self.notes]

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "missing": self.missing or None}


@dataclass(frozen=True)
class Planned:
    """A row the plan promises: its id, name and target, before anything is measured."""

    id: str
    name: str
    target: str


def missing(plan: Planned, why: str, detail: str) -> Check:
    """The row ``plan`` without a measurement: ``n/a (why)``, ``detail`` in the notes."""
    return Check(plan.id, plan.name, math.nan, math.nan, "", plan.target, False,
                 one_line(detail), missing=why)


def verdict(plan: Planned, reference: float, kdtune: float, unit: str, passed: bool,
            notes: str, raw: dict[str, Any], show_ratio: bool = False) -> Check:
    """A measured correctness row: expected (or reference) value, measured value, verdict."""
    return Check(plan.id, plan.name, reference, kdtune, unit, plan.target, bool(passed), notes,
                 raw, show_ratio=show_ratio)


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 3] + "..."
